"""humasflow: a university PR office's social-media SOP as software.

Content items move through the SOP's steps as a persisted, role-checked state machine;
standard times are tracked, the coordinator's approval is enforced, every action is a
tamper-evident record, and the last step posts through publisher plugins.
"""

from humasflow.audit import AuditReport, Finding
from humasflow.clock import Clock, system_clock
from humasflow.errors import (
    ActorNotFound,
    ApprovalStale,
    AuthenticationFailed,
    ClaimLost,
    ConfigurationError,
    ConflictError,
    ContentInvalid,
    ContentRejected,
    CredentialMissing,
    DefinitionError,
    FourEyesRequired,
    HumasflowError,
    ItemNotFound,
    MediaRefused,
    MediaUnavailable,
    NotAllowedNow,
    NotFound,
    OutcomeUnknown,
    OutputMissing,
    PlatformError,
    PublishError,
    RateLimited,
    RecheckStale,
    Refused,
    RoleRequired,
    SOPNotFound,
    StorageError,
    WaitingForPerson,
)
from humasflow.evaluation import Breach, StepRun
from humasflow.hookspecs import hookimpl
from humasflow.mediastore import MediaInfo, MediaStore
from humasflow.models import (
    Actor,
    ChannelConfig,
    ContentItem,
    Event,
    Media,
    PostContent,
    Publication,
)
from humasflow.office import DEFAULT_ORG, Office, PostReport, open
from humasflow.publishing.contract import Post, Problem, Publisher, PublisherContext, Receipt
from humasflow.sop import SOP, Header, Label, Role, Step, bundled_sop, load_sop, parse_sop
from humasflow.storage.store import Store

__version__ = "0.1.0.dev0"

__all__ = [
    "DEFAULT_ORG",
    "SOP",
    "Actor",
    "ActorNotFound",
    "ApprovalStale",
    "AuditReport",
    "AuthenticationFailed",
    "Breach",
    "ChannelConfig",
    "ClaimLost",
    "Clock",
    "ConfigurationError",
    "ConflictError",
    "ContentInvalid",
    "ContentItem",
    "ContentRejected",
    "CredentialMissing",
    "DefinitionError",
    "Event",
    "Finding",
    "FourEyesRequired",
    "Header",
    "HumasflowError",
    "ItemNotFound",
    "Label",
    "Media",
    "MediaInfo",
    "MediaRefused",
    "MediaStore",
    "MediaUnavailable",
    "NotAllowedNow",
    "NotFound",
    "Office",
    "OutcomeUnknown",
    "OutputMissing",
    "PlatformError",
    "Post",
    "PostContent",
    "PostReport",
    "Problem",
    "Publication",
    "PublishError",
    "Publisher",
    "PublisherContext",
    "RateLimited",
    "Receipt",
    "RecheckStale",
    "Refused",
    "Role",
    "RoleRequired",
    "SOPNotFound",
    "Step",
    "StepRun",
    "StorageError",
    "Store",
    "WaitingForPerson",
    "bundled_sop",
    "hookimpl",
    "load_sop",
    "open",
    "parse_sop",
    "system_clock",
]
