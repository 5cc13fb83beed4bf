"""humasflow: a university PR office's social-media SOP as software.

Content items move through the SOP's steps as a persisted, role-checked state machine;
standard times are tracked, the coordinator's approval is enforced, every action is a
tamper-evident record, and the last step posts through publisher plugins.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from humasflow.actions import CorrectiveAction
    from humasflow.audit import AuditReport, Finding
    from humasflow.calendar import WorkingCalendar
    from humasflow.clock import Clock, system_clock
    from humasflow.credentials import (
        CredentialSource,
        CredentialWarning,
        EnvironmentSource,
        SecretsFile,
    )
    from humasflow.errors import (
        ActionNotFound,
        ActorInactive,
        ActorNotFound,
        AdminRequired,
        AnchorInvalid,
        AnswerTaken,
        ApprovalStale,
        AuthenticationFailed,
        ChannelInactive,
        ChartsUnavailable,
        ClaimLost,
        ConfigurationError,
        ConflictError,
        ContentInvalid,
        ContentRejected,
        CredentialMissing,
        CredentialSourceError,
        DefinitionError,
        FourEyesRequired,
        HumasflowError,
        InputInvalid,
        ItemChanged,
        ItemNotFound,
        MailError,
        MediaRefused,
        MediaUnavailable,
        NotAllowedNow,
        NotFound,
        OrganisationNotFound,
        OutcomeUnknown,
        OutputMissing,
        PlatformError,
        PublishError,
        RateLimited,
        RecheckStale,
        Refused,
        RoleRequired,
        SecretInConfiguration,
        SOPNotFound,
        StepNotFound,
        StorageError,
        StoreLocked,
        WaitingForPerson,
    )
    from humasflow.evaluation import Breach, StepRun
    from humasflow.hookspecs import hookimpl
    from humasflow.inbox import Inbox, InboxEntry
    from humasflow.mediastore import MediaInfo, MediaStore
    from humasflow.models import (
        ADMIN_ROLE,
        Actor,
        ChannelConfig,
        ContentItem,
        Event,
        Media,
        PostContent,
        Publication,
        Variant,
    )
    from humasflow.notices import Notice
    from humasflow.office import DEFAULT_ORG, Office, PostReport, open
    from humasflow.publishing.contract import (
        CHANNEL_SETTINGS,
        Post,
        Problem,
        Publisher,
        PublisherContext,
        Receipt,
        check_settings,
        idempotency_key,
        unknown_options,
    )
    from humasflow.report import Report
    from humasflow.sop import SOP, Header, Label, Role, Step, bundled_sop, load_sop, parse_sop

__version__ = "0.1.0.dev0"

__all__ = [
    "ADMIN_ROLE",
    "CHANNEL_SETTINGS",
    "DEFAULT_ORG",
    "SOP",
    "ActionNotFound",
    "Actor",
    "ActorInactive",
    "ActorNotFound",
    "AdminRequired",
    "AnchorInvalid",
    "AnswerTaken",
    "ApprovalStale",
    "AuditReport",
    "AuthenticationFailed",
    "Breach",
    "ChannelConfig",
    "ChannelInactive",
    "ChartsUnavailable",
    "ClaimLost",
    "Clock",
    "ConfigurationError",
    "ConflictError",
    "ContentInvalid",
    "ContentItem",
    "ContentRejected",
    "CorrectiveAction",
    "CredentialMissing",
    "CredentialSource",
    "CredentialSourceError",
    "CredentialWarning",
    "DefinitionError",
    "EnvironmentSource",
    "Event",
    "Finding",
    "FourEyesRequired",
    "Header",
    "HumasflowError",
    "Inbox",
    "InboxEntry",
    "InputInvalid",
    "ItemChanged",
    "ItemNotFound",
    "Label",
    "MailError",
    "Media",
    "MediaInfo",
    "MediaRefused",
    "MediaStore",
    "MediaUnavailable",
    "NotAllowedNow",
    "NotFound",
    "Notice",
    "Office",
    "OrganisationNotFound",
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
    "Report",
    "Role",
    "RoleRequired",
    "SOPNotFound",
    "SecretInConfiguration",
    "SecretsFile",
    "Step",
    "StepNotFound",
    "StepRun",
    "StorageError",
    "StoreLocked",
    "Variant",
    "WaitingForPerson",
    "WorkingCalendar",
    "bundled_sop",
    "check_settings",
    "hookimpl",
    "idempotency_key",
    "load_sop",
    "open",
    "parse_sop",
    "system_clock",
    "unknown_options",
]

# Each public name and the module that defines it. ``import humasflow`` loads none of
# them: a name is imported the first time it is used, so a script or command that needs
# only a part of humasflow does not pay for SQLAlchemy, transitions or requests.
_SOURCES = {
    "ADMIN_ROLE": "humasflow.models",
    "ActionNotFound": "humasflow.errors",
    "Actor": "humasflow.models",
    "ActorInactive": "humasflow.errors",
    "ActorNotFound": "humasflow.errors",
    "AdminRequired": "humasflow.errors",
    "AnchorInvalid": "humasflow.errors",
    "AnswerTaken": "humasflow.errors",
    "ApprovalStale": "humasflow.errors",
    "AuditReport": "humasflow.audit",
    "AuthenticationFailed": "humasflow.errors",
    "Breach": "humasflow.evaluation",
    "CHANNEL_SETTINGS": "humasflow.publishing.contract",
    "ChannelConfig": "humasflow.models",
    "ChannelInactive": "humasflow.errors",
    "ChartsUnavailable": "humasflow.errors",
    "ClaimLost": "humasflow.errors",
    "Clock": "humasflow.clock",
    "ConfigurationError": "humasflow.errors",
    "ConflictError": "humasflow.errors",
    "ContentInvalid": "humasflow.errors",
    "ContentItem": "humasflow.models",
    "ContentRejected": "humasflow.errors",
    "CorrectiveAction": "humasflow.actions",
    "CredentialMissing": "humasflow.errors",
    "CredentialSource": "humasflow.credentials",
    "CredentialSourceError": "humasflow.errors",
    "CredentialWarning": "humasflow.credentials",
    "DEFAULT_ORG": "humasflow.office",
    "DefinitionError": "humasflow.errors",
    "EnvironmentSource": "humasflow.credentials",
    "Event": "humasflow.models",
    "Finding": "humasflow.audit",
    "FourEyesRequired": "humasflow.errors",
    "Header": "humasflow.sop",
    "HumasflowError": "humasflow.errors",
    "Inbox": "humasflow.inbox",
    "Notice": "humasflow.notices",
    "InboxEntry": "humasflow.inbox",
    "InputInvalid": "humasflow.errors",
    "ItemChanged": "humasflow.errors",
    "ItemNotFound": "humasflow.errors",
    "Label": "humasflow.sop",
    "MailError": "humasflow.errors",
    "Media": "humasflow.models",
    "MediaInfo": "humasflow.mediastore",
    "MediaRefused": "humasflow.errors",
    "MediaStore": "humasflow.mediastore",
    "MediaUnavailable": "humasflow.errors",
    "NotAllowedNow": "humasflow.errors",
    "NotFound": "humasflow.errors",
    "Office": "humasflow.office",
    "OrganisationNotFound": "humasflow.errors",
    "OutcomeUnknown": "humasflow.errors",
    "OutputMissing": "humasflow.errors",
    "PlatformError": "humasflow.errors",
    "Post": "humasflow.publishing.contract",
    "PostContent": "humasflow.models",
    "PostReport": "humasflow.office",
    "Problem": "humasflow.publishing.contract",
    "Publication": "humasflow.models",
    "PublishError": "humasflow.errors",
    "Publisher": "humasflow.publishing.contract",
    "PublisherContext": "humasflow.publishing.contract",
    "RateLimited": "humasflow.errors",
    "Receipt": "humasflow.publishing.contract",
    "RecheckStale": "humasflow.errors",
    "Refused": "humasflow.errors",
    "Report": "humasflow.report",
    "Role": "humasflow.sop",
    "RoleRequired": "humasflow.errors",
    "SOP": "humasflow.sop",
    "SOPNotFound": "humasflow.errors",
    "SecretInConfiguration": "humasflow.errors",
    "SecretsFile": "humasflow.credentials",
    "Step": "humasflow.sop",
    "StepNotFound": "humasflow.errors",
    "StepRun": "humasflow.evaluation",
    "StorageError": "humasflow.errors",
    "StoreLocked": "humasflow.errors",
    "Variant": "humasflow.models",
    "WaitingForPerson": "humasflow.errors",
    "WorkingCalendar": "humasflow.calendar",
    "bundled_sop": "humasflow.sop",
    "check_settings": "humasflow.publishing.contract",
    "hookimpl": "humasflow.hookspecs",
    "idempotency_key": "humasflow.publishing.contract",
    "load_sop": "humasflow.sop",
    "open": "humasflow.office",
    "parse_sop": "humasflow.sop",
    "system_clock": "humasflow.clock",
    "unknown_options": "humasflow.publishing.contract",
}


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        try:  # a submodule (``humasflow.errors``) is an attribute once imported
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
