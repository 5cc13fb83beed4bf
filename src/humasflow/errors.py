"""Every error humasflow raises, in one rooted tree.

Catch :class:`HumasflowError` to catch them all. Each error carries the objects
involved as attributes, and its message says what to do next::

    HumasflowError
    ├── DefinitionError            a bad SOP file: file, key path, problem, expected
    ├── ConfigurationError         a bad channel, plugin or store setting
    │   ├── CredentialMissing      a channel's credential is not in its credential source
    │   ├── SecretInConfiguration  a secret given where a credential reference belongs
    │   ├── CredentialSourceError  the secrets file (or vault) cannot be read or written
    │   ├── AnchorInvalid          an audit anchor file cannot be read or is not one
    │   └── ChartsUnavailable      charts need the ``charts`` extra (matplotlib)
    ├── InputInvalid               a value humasflow cannot take (also a ValueError):
    │                              field, problem, limit, length
    ├── NotFound
    │   ├── ActionNotFound         no such corrective action in this organisation
    │   ├── ItemNotFound           no such item in this organisation
    │   ├── ActorNotFound          no such actor in this organisation
    │   ├── OrganisationNotFound   no such organisation in the store
    │   ├── SOPNotFound            no SOP revision registered / no such revision
    │   └── StepNotFound           no step (state) of that key in the SOP
    ├── Refused                    the SOP does not allow this action now
    │   ├── NotAllowedNow          the action does not exist in the item's current step
    │   ├── RoleRequired           the actor does not hold the step's role
    │   │   └── AdminRequired      only an active administrator may change this
    │   ├── ActorInactive          the actor was deactivated: cannot act or be assigned
    │   ├── ChannelInactive        the channel was deactivated: it is not posted to
    │   ├── FourEyesRequired       the approver is the author of the content
    │   ├── OutputMissing          the step's required output was not supplied
    │   ├── ApprovalStale          the content changed after it was approved
    │   ├── RecheckStale           what would be posted is not what the recheck passed
    │   └── ContentInvalid         the post breaks a target channel's rules
    ├── MediaRefused               a media file cannot be attached (type, size, place)
    ├── MailError                  a mail server refused or could not be reached
    ├── AnswerTaken                an emailed answer (or its token) was processed already
    ├── ConflictError              someone else changed the item first (stale version)
    │   └── ItemChanged            the item changed after the posting checks: not posted
    ├── ClaimLost                  a worker's attempt at a channel was taken over: it stops
    ├── PublishError               one channel's publishing failed
    │   ├── AuthenticationFailed   token expired or revoked: renew the credential
    │   ├── ContentRejected        the platform refused the content: not retried
    │   ├── RateLimited            throttled: retry after ``reset_at``
    │   ├── PlatformError          transient or server error: retried with backoff
    │   ├── OutcomeUnknown         the request may have reached the platform
    │   └── WaitingForPerson       a person posts by hand and confirms the URL
    └── StorageError               the store cannot be opened, read, written or migrated
        ├── StoreLocked            another connection holds the lock longer than the
        │                          busy timeout
        └── MediaUnavailable       a stored media file is missing or its bytes changed

:class:`transitions.MachineError` never reaches callers: the engine turns it into
:class:`NotAllowedNow`.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from humasflow.i18n import _

if TYPE_CHECKING:
    from humasflow.publishing.contract import Problem

__all__ = [
    "ActionNotFound",
    "ActorInactive",
    "ActorNotFound",
    "AdminRequired",
    "AnchorInvalid",
    "AnswerTaken",
    "ApprovalStale",
    "AuthenticationFailed",
    "ChannelInactive",
    "ChartsUnavailable",
    "ClaimLost",
    "ConfigurationError",
    "ConflictError",
    "ContentInvalid",
    "ContentRejected",
    "CredentialMissing",
    "CredentialSourceError",
    "DefinitionError",
    "FourEyesRequired",
    "HumasflowError",
    "InputInvalid",
    "ItemChanged",
    "ItemNotFound",
    "MailError",
    "MediaRefused",
    "MediaUnavailable",
    "NotAllowedNow",
    "NotFound",
    "OrganisationNotFound",
    "OutcomeUnknown",
    "OutputMissing",
    "PlatformError",
    "PublishError",
    "RateLimited",
    "RecheckStale",
    "Refused",
    "RoleRequired",
    "SOPNotFound",
    "SecretInConfiguration",
    "StepNotFound",
    "StorageError",
    "StoreLocked",
    "WaitingForPerson",
]


def _phrase(text: str) -> str:
    """A phrase marked with ``N_`` where it was made (an action such as "add or change
    actors"), in the current language; an empty one stays empty."""
    return _(text) if text else text


def _library_spelling(param: str) -> str:
    """How a library message names a parameter of the call: ``text=...``, ``media=[...]``."""
    return f"{param}=[...]" if param in ("media", "channels") else f"{param}=..."


class HumasflowError(Exception):
    """The root of every error humasflow raises.

    Attributes:
        params: The parameters of the call (``text``, ``media``, ``reason``…) that the
            message names, if any; :meth:`reworded` spells them as another caller does.
    """

    params: tuple[str, ...] = ()
    _template: str = ""

    def _naming(self, template: str) -> str:
        """Keep a message whose ``{param}`` fields name parameters of the call; return it
        spelled as the library's callers write them (``text=...``)."""
        self._template = template
        self.params = tuple(dict.fromkeys(
            field for _text, field, _spec, _conv in string.Formatter().parse(template)
            if field))
        return self.reworded(_library_spelling)

    def reworded(self, spell: Callable[[str], str]) -> str:
        """The message with each parameter it names spelled by ``spell(param)``: the
        command line, say, names ``text`` ``--text``. A message that names no parameter
        is returned as it is."""
        if not self._template:
            return str(self)
        return self._template.format_map({p: spell(p) for p in self.params})


def _literal(text: str) -> str:
    """``text`` as a literal part of a message template (its braces kept as they are)."""
    return text.replace("{", "{{").replace("}", "}}")


class DefinitionError(HumasflowError):
    """An SOP definition is malformed.

    Attributes:
        source: The file (or ``"<string>"``) the definition came from.
        path: The key path inside the file, e.g. ``steps[3].standard_time`` (arrays
            counted from 0, as TOML libraries count them).
        problem: What is wrong.
        expected: What would be accepted instead.
        where: The place as the message names it for people, e.g.
            ``step 4 (approve): standard_time`` (counted from 1, with the step's key);
            the ``path`` when not given.
    """

    def __init__(self, source: str, path: str, problem: str, expected: str = "", *,
                 where: str = "") -> None:
        self.source = source
        self.path = path
        self.problem = problem
        self.expected = expected
        self.where = where or path
        where = f"{source}: {self.where}" if self.where else source
        if expected:
            message = _("{where}: {problem} (expected {expected})").format(
                where=where, problem=problem, expected=expected)
        else:
            message = _("{where}: {problem}").format(where=where, problem=problem)
        super().__init__(message)


class ConfigurationError(HumasflowError):
    """A channel, plugin or store setting is wrong."""


class CredentialMissing(ConfigurationError):
    """A channel needs a credential its credential source does not hold.

    The message names the reference (the environment variable or the secrets file's
    key), never a value.

    Attributes:
        channel: The channel name.
        variable: The credential reference.
        source: Where it was looked up (``None``: the environment).
    """

    def __init__(self, channel: str, variable: str, source: str | None = None) -> None:
        self.channel = channel
        self.variable = variable
        self.source = source
        if source is None:
            message = _("channel {channel!r} needs the environment variable {variable} to be "
                        "set; set it in the environment of the process that posts").format(
                            channel=channel, variable=variable)
        else:
            message = _("channel {channel!r} needs the credential {variable}, which {source} "
                        "does not hold; add it there").format(
                            channel=channel, variable=variable, source=source)
        super().__init__(message)


class SecretInConfiguration(ConfigurationError):
    """A secret (a token, a password) was given where only a reference to one belongs.

    Channel settings and credential references are stored and recorded; secrets live
    only in the credential source (the environment, a secrets file, a vault). The
    message names the key, never the value.

    Attributes:
        channel: The channel name.
        key: The setting or credential name that held it.
        field: ``"settings"`` or ``"credentials"``.
    """

    def __init__(self, channel: str, key: str, field: str, problem: str) -> None:
        self.channel = channel
        self.key = key
        self.field = field
        if field == "credentials":
            message = _("channel {channel!r}: credential {key!r} {problem}; never put a "
                        "secret here: give the name of the environment variable (or "
                        "secrets-file key) that holds it, in capitals, like X_ACCESS_TOKEN")
        else:
            message = _("channel {channel!r}: setting {key!r} {problem}; never put a secret "
                        "here: put the secret in the environment or the secrets file and "
                        "name it in the channel's credentials by a credential reference (the "
                        "channel's credential access_token read from X_ACCESS_TOKEN, say)")
        super().__init__(message.format(channel=channel, key=key, problem=problem))


class CredentialSourceError(ConfigurationError):
    """A credential source cannot be used: a secrets file others can read, a file that is
    not valid TOML, a source that cannot store a refreshed credential.

    Attributes:
        source: The source (e.g. ``"the secrets file /etc/humasflow/secrets.toml"``).
    """

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(_("{source}: {problem}").format(source=source, problem=problem))


class AnchorInvalid(ConfigurationError):
    """An audit anchor (see :meth:`humasflow.Office.anchor`) cannot be used.

    Attributes:
        source: The file or description of the anchor given.
        problem: What is wrong with it.
    """

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(_(
            "audit anchor {source}: {problem}; give the JSON file written by "
            "'humasflow audit anchor --out FILE' (or Office.anchor())").format(
                source=source, problem=problem))
class InputInvalid(HumasflowError, ValueError):
    """A value given to humasflow cannot be taken as it is. Nothing was written.

    Raised at the office's boundary (and by the SOP loader's callers) before anything
    reaches the store, so SQLite and PostgreSQL refuse the same values the same way:
    NUL characters, lone surrogates, control characters in identifiers, values longer
    than their limit, times out of range or that do not exist on the local clock.
    It is also a :class:`ValueError`.

    Attributes:
        field: The argument or field, e.g. ``"title"`` or ``"variants['x']"``.
        problem: What is wrong with it.
        limit: The limit that was broken (characters), if the problem is the length.
        length: The value's length (characters), if the problem is the length.
    """

    def __init__(self, field: str, problem: str, hint: str = "", *,
                 limit: int | None = None, length: int | None = None) -> None:
        self.field = field
        self.problem = problem
        self.limit = limit
        self.length = length
        if hint:
            message = _("{field} {problem}; {hint}; nothing was written").format(
                field=field, problem=problem, hint=hint)
        else:
            message = _("{field} {problem}; nothing was written").format(
                field=field, problem=problem)
        super().__init__(message)

    def reworded(self, spell: Callable[[str], str]) -> str:
        """The message naming the field as ``spell`` names its parameter (the part before
        any ``[`` or ``.``: ``variants['x']`` is a part of ``variants``)."""
        base = re.match(r"[A-Za-z_]+", self.field)
        if base is None:
            return str(self)
        named = spell(base.group())
        rest = self.field[base.end():]
        return f"{named}{rest}" + str(self)[len(self.field):]


class NotFound(HumasflowError):
    """Something asked for does not exist (in the caller's organisation)."""


class ActionNotFound(NotFound):
    """No corrective action with this id exists in the organisation."""

    def __init__(self, action_id: str, org: str) -> None:
        self.action_id = action_id
        self.org = org
        super().__init__(_(
            "no corrective action {action_id!r} in organisation {org!r}; "
            "list them with `humasflow actions list`").format(action_id=action_id, org=org))


class ItemNotFound(NotFound):
    """No content item with this id exists in the organisation."""

    def __init__(self, item_id: str, org: str) -> None:
        self.item_id = item_id
        self.org = org
        super().__init__(_(
            "no content item {item_id!r} in organisation {org!r}; "
            "list the items with `humasflow list`").format(item_id=item_id, org=org))


class ActorNotFound(NotFound):
    """No actor with this id exists in the organisation."""

    def __init__(self, actor_id: str, org: str) -> None:
        self.actor_id = actor_id
        self.org = org
        super().__init__(_(
            "no actor {actor_id!r} in organisation {org!r}; "
            "add them with `humasflow actor add` or Office.add_actor()").format(
                actor_id=actor_id, org=org))


class OrganisationNotFound(NotFound):
    """No organisation of this id exists in the store (and the office may not create it).

    Attributes:
        org: The organisation asked for.
        known: The organisations the store holds.
    """

    def __init__(self, org: str, known: Sequence[str]) -> None:
        self.org = org
        self.known = tuple(known)
        super().__init__(_(
            "there is no organisation {org!r} in this store; its organisations: {known}. "
            "Check the spelling of --org (HUMASFLOW_ORG), or create it with `humasflow "
            "--org {org} init` (humasflow.open(..., create=True))").format(
                org=org, known=", ".join(self.known) or _("none")))


class StepNotFound(NotFound):
    """No step of the organisation's SOP has this key (a state asked for by name).

    Attributes:
        state: The key asked for.
        valid: The keys that exist: the SOP's steps, ``posted`` and ``cancelled``.
    """

    def __init__(self, state: str, org: str, valid: Sequence[str]) -> None:
        self.state = state
        self.org = org
        self.valid = tuple(valid)
        super().__init__(_(
            "{state!r} is not a step of organisation {org!r}'s SOP; the states are: "
            "{valid}").format(state=state, org=org, valid=", ".join(self.valid)))


class SOPNotFound(NotFound):
    """No SOP revision is registered (or not the one asked for)."""

    def __init__(self, org: str, detail: str = "", *, revision: int | None = None,
                 in_effect: bool = False) -> None:
        self.org = org
        if revision is not None:
            message = _("no SOP revision registered for organisation {org!r} (revision "
                        "{revision}); register one with `humasflow init` or "
                        "Office.establish()")
        elif in_effect:
            message = _("no SOP revision registered for organisation {org!r} that is in "
                        "effect now; register one with `humasflow init` or "
                        "Office.establish()")
        elif detail:
            message = _("no SOP revision registered for organisation {org!r}{detail}; "
                        "register one with `humasflow init` or Office.establish()")
        else:
            message = _("no SOP revision registered for organisation {org!r}; "
                        "register one with `humasflow init` or Office.establish()")
        super().__init__(message.format(org=org, detail=detail, revision=revision))


class Refused(HumasflowError):
    """The SOP does not allow this action now. Nothing was changed.

    Attributes:
        item_id: The content item acted on.
        step: The key of the item's current step.
        action: The action that was refused.
    """

    def __init__(self, message: str, *, item_id: str, step: str, action: str,
                 naming: bool = False) -> None:
        self.item_id = item_id
        self.step = step
        self.action = action
        # With ``naming`` the message's {param} fields name parameters of the call.
        super().__init__(self._naming(message) if naming else message)


class NotAllowedNow(Refused):
    """The action does not exist in the item's current step."""

    def __init__(self, *, item_id: str, step: str, action: str, allowed: Sequence[str]) -> None:
        self.allowed = tuple(allowed)
        if self.allowed:
            message = _("item {item_id!r} is at step {step!r}, where {action!r} is not "
                        "possible; possible now: {choices}")
        else:
            message = _("item {item_id!r} is at step {step!r}, where {action!r} is not "
                        "possible; possible now: nothing (the item is closed)")
        super().__init__(
            message.format(item_id=item_id, step=step, action=action,
                           choices=", ".join(self.allowed)),
            item_id=item_id,
            step=step,
            action=action,
        )


class RoleRequired(Refused):
    """The actor does not hold the role the step requires."""

    def __init__(
        self, *, item_id: str, step: str, action: str, actor_id: str, role: str
    ) -> None:
        self.actor_id = actor_id
        self.role = role
        super().__init__(
            _("{actor_id!r} cannot {action} item {item_id!r} at step {step!r}: "
              "the SOP gives this step to the role {role!r}; ask someone with that "
              "role").format(actor_id=actor_id, action=action, item_id=item_id, step=step,
                             role=role),
            item_id=item_id,
            step=step,
            action=action,
        )


class AdminRequired(RoleRequired):
    """Only an active administrator may change actors, roles, channels or SOP revisions.

    Attributes:
        actor_id: Who tried.
        role: Always ``"admin"``.
        reason: Why ``actor_id`` does not count as an administrator.
    """

    def __init__(self, *, action: str, actor_id: str, reason: str) -> None:
        self.actor_id = actor_id
        self.role = "admin"
        self.reason = reason
        Refused.__init__(
            self,
            _("{actor_id!r} cannot {action}: {reason}; only an active administrator "
              "(role 'admin') may. Ask an administrator, or, in an organisation that has "
              "none yet, create the first with `humasflow init --admin ID --name NAME` "
              "or Office.bootstrap_admin()").format(actor_id=actor_id, action=_phrase(action),
                                                    reason=reason),
            item_id="-", step="-", action=action,
        )


class ActorInactive(Refused):
    """The actor was deactivated: they cannot act, be assigned or administer."""

    def __init__(self, *, actor_id: str, action: str, item_id: str = "-",
                 step: str = "-") -> None:
        self.actor_id = actor_id
        super().__init__(
            _("{actor_id!r} cannot {action}: the actor is deactivated; an administrator "
              "can reactivate them (`humasflow actor activate {actor}`)").format(
                  actor_id=actor_id, action=_phrase(action), actor=actor_id),
            item_id=item_id, step=step, action=action,
        )


class ChannelInactive(Refused):
    """The channel was deactivated: it is no default target and is not posted to."""

    def __init__(self, *, channel: str, action: str, item_id: str = "-",
                 step: str = "-") -> None:
        self.channel = channel
        super().__init__(
            _("channel {channel!r} is deactivated, so item {item_id!r} cannot be posted "
              "to it; an administrator can reactivate it (`humasflow channel activate "
              "{name}`), or the coordinator can skip it for this item").format(
                  channel=channel, item_id=item_id, name=channel),
            item_id=item_id, step=step, action=action,
        )


class FourEyesRequired(Refused):
    """The approver wrote (part of) the content they would approve."""

    def __init__(self, *, item_id: str, step: str, action: str, actor_id: str) -> None:
        self.actor_id = actor_id
        super().__init__(
            _("{actor_id!r} cannot {action} item {item_id!r}: they wrote its content, and "
              "the SOP requires a second person to decide (four-eyes rule)").format(
                  actor_id=actor_id, action=action, item_id=item_id),
            item_id=item_id,
            step=step,
            action=action,
        )


class OutputMissing(Refused):
    """The step's required output was not supplied."""

    def __init__(
        self, *, item_id: str, step: str, action: str, output: str, hint: str
    ) -> None:
        self.output = output
        # The hint may name the parameters that supply the output: "({text})".
        template = _literal(_("step {step!r} of item {item_id!r} cannot {action} without "
                              "its output {output!r}").format(
                                  step=step, item_id=item_id, action=action, output=output))
        super().__init__(
            self._naming(f"{template}: {hint}"),
            item_id=item_id,
            step=step,
            action=action,
        )


class ApprovalStale(Refused):
    """The content changed after the coordinator approved it."""

    def __init__(self, *, item_id: str, step: str, action: str) -> None:
        super().__init__(
            _("item {item_id!r} cannot {action}: its concept or design changed after it "
              "was approved; it needs the coordinator's approval again").format(
                  item_id=item_id, action=action),
            item_id=item_id,
            step=step,
            action=action,
        )


class RecheckStale(Refused):
    """What would be posted differs from what the recheck passed (or finally approved).

    Attributes:
        reason: What is missing or changed.
    """

    def __init__(self, *, item_id: str, step: str, action: str, reason: str) -> None:
        self.reason = reason
        super().__init__(
            _("item {item_id!r} cannot {action}: {reason}; nothing was posted").format(
                item_id=item_id, action=action, reason=reason),
            item_id=item_id,
            step=step,
            action=action,
        )


class ContentInvalid(Refused):
    """The post breaks one or more target channels' rules."""

    def __init__(
        self, *, item_id: str, step: str, action: str, problems: Sequence[Problem]
    ) -> None:
        self.problems = tuple(problems)
        lines = "; ".join(str(p) for p in self.problems)
        super().__init__(
            _("item {item_id!r} cannot {action}: the post breaks its channels' rules: "
              "{problems}").format(item_id=item_id, action=action, problems=lines),
            item_id=item_id,
            step=step,
            action=action,
        )


class ConflictError(HumasflowError):
    """Someone else changed the item between reading and writing it.

    Nothing was written. Read the item again and retry the action if it still applies.
    """

    def __init__(self, item_id: str, expected_version: int) -> None:
        self.item_id = item_id
        self.expected_version: int | None = expected_version
        if item_id.startswith("org:"):
            message = _("the record of organisation {org!r} was changed by someone else "
                        "(expected version {version}); nothing was written: reload it and "
                        "try again")
        else:
            message = _("item {item_id!r} was changed by someone else (expected version "
                        "{version}); nothing was written: reload it and try again")
        super().__init__(message.format(org=item_id[4:], item_id=item_id,
                                        version=expected_version))


class ItemChanged(ConflictError):
    """The item moved or changed after the posting checks: nothing was posted.

    A channel is claimed only while the item is still at the posting step with the
    content, approval and recheck that were checked; a revise, rework or cancel that
    committed in between wins, and the channels it stopped stay unposted.
    """

    def __init__(self, item_id: str, channel: str = "") -> None:
        self.item_id = item_id
        self.expected_version = None
        self.channel = channel
        if channel:
            message = _("item {item_id} changed after the posting checks (revised, sent "
                        "back, cancelled or already moved on), so channel {channel!r} was "
                        "not posted; look at it with 'humasflow show {item_id}' and post "
                        "again once it is back at the posting step")
        else:
            message = _("item {item_id} changed after the posting checks (revised, sent "
                        "back, cancelled or already moved on), so its channels were not "
                        "posted; look at it with 'humasflow show {item_id}' and post again "
                        "once it is back at the posting step")
        HumasflowError.__init__(self, message.format(item_id=item_id, channel=channel))


class ClaimLost(HumasflowError):
    """This worker no longer holds its attempt at a channel: stop before the next call.

    Raised by ``progress.save`` in a publisher when the attempt's lease ran out and the
    channel was taken over (marked ``unknown``, reconciled, or claimed by another
    worker). The platform must not be called again in this attempt, and nothing is
    recorded over the new owner's record. A publisher lets it propagate.

    It is not a :class:`PublishError`: it says nothing about the platform's answer, so
    it must never be recorded as a channel's outcome (nor translated into one). It is
    not a :class:`BaseException` either: a lost claim is an orderly stop, not a crash,
    and the publisher's own ``finally`` and ``except Exception`` clean-ups still run.

    Attributes:
        item_id: The content item.
        channel: The channel name.
        worker: The worker that lost the claim.
    """

    def __init__(self, *, item_id: int | str, channel: str, worker: str) -> None:
        self.item_id = item_id
        self.channel = channel
        self.worker = worker
        super().__init__(_(
            "worker {worker!r} no longer holds the attempt at channel {channel!r} of item "
            "{item_id}: its lease ran out and the channel was taken over; this attempt "
            "stops before its next call to the platform, and the new owner's record "
            "stands").format(worker=worker, channel=channel, item_id=item_id))


class PublishError(HumasflowError):
    """Publishing to one channel failed.

    Attributes:
        channel: The channel name.
        retryable: Whether trying again later can help.
    """

    retryable = False

    def __init__(self, message: str, *, channel: str = "") -> None:
        self.channel = channel
        super().__init__(message)


class AuthenticationFailed(PublishError):
    """The channel's credential was refused (expired, revoked). Not retried."""

    def __init__(self, message: str, *, channel: str = "", credential: str = "") -> None:
        self.credential = credential
        super().__init__(message, channel=channel)


class ContentRejected(PublishError):
    """The platform refused the content itself. Not retried."""


class RateLimited(PublishError):
    """The platform throttled the request; retry after ``reset_at``."""

    retryable = True

    def __init__(
        self, message: str, *, channel: str = "", reset_at: datetime | None = None
    ) -> None:
        self.reset_at = reset_at
        super().__init__(message, channel=channel)


class PlatformError(PublishError):
    """A transient or server-side failure, safe to retry."""

    retryable = True

    def __init__(self, message: str, *, channel: str = "", code: str | int | None = None) -> None:
        self.code = code
        super().__init__(message, channel=channel)


class OutcomeUnknown(PublishError):
    """The request may have reached the platform; never re-posted blindly."""


class WaitingForPerson(PublishError):
    """The channel has no API: a person posts by hand, then confirms with the URL."""


class MailError(HumasflowError):
    """A message could not be handed to the mail server (connection, login, refusal).

    Nothing recorded is undone by it: the message waits to be sent again.

    Attributes:
        permanent: The server refused the message for good (an unknown recipient, say),
            so sending it again will not help.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class ChartsUnavailable(ConfigurationError):
    """Charts need matplotlib, which is not installed."""

    def __init__(self) -> None:
        super().__init__(_("Charts need matplotlib, which is not installed: install the "
                           "charts extra with: pip install 'humasflow[charts]'"))


class AnswerTaken(HumasflowError):
    """An emailed answer was processed already, or its approval token was used.

    Nothing was written by the attempt that raised it.

    Attributes:
        what: ``"message"`` (this reply was processed, by another poller perhaps) or
            ``"token"`` (another reply already answered with the same token).
    """

    def __init__(self, what: str) -> None:
        self.what = what
        if what == "token":
            message = _("this approval request was answered already; a request answers once")
        else:
            message = _("this reply was processed already")
        super().__init__(message)


class StorageError(HumasflowError):
    """The store cannot be opened, read, written or migrated. Nothing was written."""


class StoreLocked(StorageError):
    """Another connection held a lock the action needs for longer than the busy timeout.

    On SQLite that is the database's write lock (one writer at a time); on PostgreSQL a
    row or table lock. Reading never waits for it. Nothing was written: try again when
    the other writer is done, or give a longer busy timeout.

    Attributes:
        target: The store (a path or a URL without its password).
        timeout: The busy timeout that ran out, in seconds.
    """

    def __init__(self, target: str, timeout: float, *, postgres: bool = False) -> None:
        self.target = target
        self.timeout = timeout
        if postgres:
            message = _(
                "the store {target} is locked: another transaction holds a row or table "
                "lock this action needs and kept it for more than {timeout:g} s (the "
                "lock_timeout), e.g. a running `humasflow worker` or `run-due`, another "
                "humasflow command, or a program with the database open in a write "
                "transaction; nothing was written. Try again when it is done, or wait "
                "longer with --busy-timeout SECONDS (HUMASFLOW_BUSY_TIMEOUT) or "
                "busy_timeout= in humasflow.open()/Store()")
        else:
            message = _(
                "the store {target} is locked: another connection holds its write lock and "
                "kept it for more than {timeout:g} s, e.g. a running `humasflow worker` or "
                "`run-due`, another humasflow command, or a program with the database open "
                "in a write transaction; nothing was written. Try again when it is done, or "
                "wait longer with --busy-timeout SECONDS (HUMASFLOW_BUSY_TIMEOUT) or "
                "busy_timeout= in humasflow.open()/Store()")
        super().__init__(message.format(target=target, timeout=timeout))


class MediaRefused(HumasflowError):
    """A media file cannot be attached.

    The office turns it into a :class:`~humasflow.errors.ContentInvalid` problem.

    Attributes:
        source: The file or URL, as given.
        rule: The rule broken (``media_type``, ``max_bytes``, ``regular_file``…).
        limit: The limit, where there is one.
        actual: What was found.
    """

    def __init__(self, source: str, rule: str, message: str, *, limit: Any = None,
                 actual: Any = None) -> None:
        self.source = source
        self.rule = rule
        self.limit = limit
        self.actual = actual
        super().__init__(message)


class MediaUnavailable(StorageError):
    """A stored media file is missing or its bytes no longer match its hash.

    Nothing is posted from it. Attach the media again (``revise``) to store them anew.

    Attributes:
        sha256: The hash the item records.
        reason: ``missing`` or ``changed``.
    """

    def __init__(self, sha256: str, reason: str, where: str = "") -> None:
        self.sha256 = sha256
        self.reason = reason
        if reason == "missing" and where:
            message = _("media {sha}… is missing from the media store ({where}); nothing was "
                        "posted from it. Attach the file again (revise the item) to store "
                        "it anew")
        elif reason == "missing":
            message = _("media {sha}… is missing from the media store; nothing was posted "
                        "from it. Attach the file again (revise the item) to store it anew")
        elif where:
            message = _("media {sha}… was changed in the media store: its bytes no longer "
                        "match their hash ({where}); nothing was posted from it. Attach the "
                        "file again (revise the item) to store it anew")
        else:
            message = _("media {sha}… was changed in the media store: its bytes no longer "
                        "match their hash; nothing was posted from it. Attach the file again "
                        "(revise the item) to store it anew")
        super().__init__(message.format(sha=sha256[:16], where=where))
