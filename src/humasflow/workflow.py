"""The workflow engine: an SOP revision as a ``transitions`` state machine.

One :class:`Engine` (one ``Machine``) is built per SOP revision, with
``auto_transitions=False`` so that no ``to_<state>()`` shortcut can skip the
coordinator's approval. Items are never added to the machine: the engine reads each
(state, trigger)'s transition from it once, into a table, and an action runs that
transition's guard itself (the machine's dispatch per action cost more than the rest of
the engine). The engine works on snapshots and returns a :class:`Move`; it never
touches the store: the :class:`~humasflow.office.Office` writes the move in one
transaction.

The triggers:

========== ============================================================
complete   finish a step that decides nothing (concept, notes, design,
           production, publication)
approve    the coordinator approves the concept (approval step)
reject     the coordinator rejects it, with a reason → ``return_to``
pass       the recheck passes
rework     the recheck fails, with findings → ``return_to``
revise     change the concept or design; after the approval this sends
           the item back to the approval step
cancel     stop the item before it is posted, with a reason
========== ============================================================
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
from transitions import EventData, Machine

from humasflow._data import plain
from humasflow.errors import (
    ApprovalStale,
    ContentInvalid,
    FourEyesRequired,
    NotAllowedNow,
    OutputMissing,
    RecheckStale,
    Refused,
    RoleRequired,
)
from humasflow.i18n import _
from humasflow.models import (
    VARIANT_KEYS,
    Actor,
    ContentItem,
    Media,
    PostContent,
    Variant,
    media_tuple,
)
from humasflow.sop import SOP, Step

__all__ = ["CLOSED_STATES", "TRIGGERS", "Engine", "Move"]

CLOSED_STATES = ("posted", "cancelled")
TRIGGERS = ("complete", "approve", "reject", "pass", "rework", "revise", "cancel")

#: What each action may carry, beyond ``note``.
_PAYLOAD: Mapping[str, frozenset[str]] = {
    "concept": frozenset({"text", "link", "variants", "channels"}),
    "notes": frozenset({"notes"}),
    "design": frozenset({"media", "text"}),
    "production": frozenset({"media"}),
}
_REVISE_KEYS = frozenset({"text", "media", "link", "variants", "channels"})

Validator = Callable[[ContentItem, PostContent], Sequence[Any]]


@attrs.frozen
class Move:
    """The result of one allowed action, ready to be recorded.

    Attributes:
        action: The trigger that ran.
        from_state: The step before.
        to_state: The step after (equal to ``from_state`` for a revision in place).
        item: The item as it will be stored (state and outputs changed).
        note: The reason, answer or findings given.
        data: The facts the record keeps (outputs supplied).
    """

    action: str
    from_state: str
    to_state: str
    item: ContentItem
    note: str = ""
    data: Mapping[str, Any] = attrs.field(factory=dict)


#: What the table of moves gives for an action the state does not allow.
_NO_MOVE = "\0"


class Engine:
    """The state machine of one SOP revision.

    Args:
        sop: The SOP definition.
        revision: The registered revision number the items are pinned to.
    """

    def __init__(self, sop: SOP, revision: int = 1) -> None:
        self.sop = sop
        self.revision = revision
        life = sop.lifecycle
        self.first_step = life[0].key
        self.approval_step = next(s for s in life if s.output == "approval")
        self._index = {s.key: i for i, s in enumerate(life)}
        self._steps = {key: sop.step(key) for key in self._index}
        self._content_role = life[0].actor
        self.machine = Machine(
            model=None,
            states=[s.key for s in life] + list(CLOSED_STATES),
            initial=self.first_step,
            auto_transitions=False,
            send_event=True,
        )
        guard: list[str | Callable[..., bool | None]] = [self._guard]
        approval_index = self._index[self.approval_step.key]
        for i, step in enumerate(life):
            after = life[i + 1].key if i + 1 < len(life) else "posted"
            back = step.return_to or (life[i - 1].key if i else step.key)
            decisions = step.decisions
            if decisions is None:
                self.machine.add_transition("complete", step.key, after, conditions=guard)
            else:
                self.machine.add_transition(decisions[0], step.key, after, conditions=guard)
                self.machine.add_transition(decisions[1], step.key, back, conditions=guard)
            if step.output == "publication" and sop.header.final_approval:
                # The coordinator's final approval of the produced content, in place.
                self.machine.add_transition("approve", step.key, None, conditions=guard)
            revise_to = self.approval_step.key if i > approval_index else None
            self.machine.add_transition("revise", step.key, revise_to, conditions=guard)
            self.machine.add_transition("cancel", step.key, "cancelled", conditions=guard)
        # The machine is the definition; an action looks its transition up in this table,
        # read from the machine once, and runs the guard itself. Every transition's only
        # condition is the guard, which passes or raises, and there are no callbacks: the
        # machine would run the first transition of (state, trigger), exactly this,
        # without its dispatch on every action.
        self._moves: dict[tuple[str, str], str | None] = {}
        for trigger, event in self.machine.events.items():
            for source, transitions in event.transitions.items():
                if transitions:
                    self._moves[source, trigger] = transitions[0].dest  # None: in place
        self._allowed = {state: tuple(t for t in TRIGGERS if (state, t) in self._moves)
                         for state in self.machine.states}

    # -- queries -------------------------------------------------------------------------

    def step(self, state: str) -> Step | None:
        """Return the lifecycle step for ``state`` (``None`` for closed states)."""
        return self._steps.get(state)

    def allowed(self, state: str) -> list[str]:
        """Return the actions possible in ``state``, in a stable order."""
        return list(self._allowed.get(state, ()))

    # -- running an action --------------------------------------------------------------

    def run(
        self,
        item: ContentItem,
        action: str,
        actor: Actor,
        *,
        note: str = "",
        payload: Mapping[str, Any] | None = None,
        validate: Validator | None = None,
        label: str | None = None,
    ) -> Move:
        """Check and apply ``action`` to a snapshot of ``item``.

        Args:
            item: The item as read from the store.
            action: One of :data:`TRIGGERS`.
            actor: Who acts (with the roles read from the store).
            note: A reason, answer or findings.
            payload: The step's output (``text``, ``notes``, ``media``…).
            validate: Called with the item and its post before an approval is asked
                for or given; returns the list of problems.
            label: The name of the action in refusal messages (e.g. ``post`` for the
                posting step's checks), if not ``action``.

        Returns:
            The move to record.

        Raises:
            Refused: A subclass saying exactly why the SOP does not allow it.
        """
        dest = self._moves.get((item.state, action), _NO_MOVE)
        if dest is _NO_MOVE:
            raise NotAllowedNow(item_id=str(item.id), step=item.state, action=action,
                                allowed=self.allowed(item.state))
        ctx = _Context(self, item, action, actor, note.strip(), dict(payload or {}), validate)
        ctx.action = label or action
        ctx.check_and_apply()  # the transition's guard: raises what refuses the action
        new_state = item.state if dest is None else dest
        assert ctx.item is not None
        new_item = attrs.evolve(ctx.item, state=new_state)
        return Move(action=action, from_state=item.state, to_state=new_state, item=new_item,
                    note=ctx.note, data=ctx.data)

    def _guard(self, event: EventData) -> bool:
        ctx: _Context = event.kwargs["ctx"]
        ctx.check_and_apply()
        return True


class _Context:
    """One action's checks and effects, run as the machine's condition."""

    def __init__(
        self,
        engine: Engine,
        item: ContentItem,
        action: str,
        actor: Actor,
        note: str,
        payload: dict[str, Any],
        validate: Validator | None,
    ) -> None:
        self.engine = engine
        self.original = item
        self.item: ContentItem = item
        self.trigger = action
        self.action = action  # as named in refusals
        self.actor = actor
        self.note = note
        self.payload = payload
        self.validate = validate
        self.data: dict[str, Any] = {}
        step = engine.step(item.state)
        assert step is not None
        self.step = step

    def refuse_output(self, output: str, hint: str) -> OutputMissing:
        return OutputMissing(item_id=str(self.item.id), step=self.step.key, action=self.action,
                             output=output, hint=hint)

    def check_and_apply(self) -> None:
        self.check_role()
        handler = getattr(self, f"_do_{self.trigger}")
        handler()

    def check_role(self) -> None:
        if self.trigger == "cancel":
            role_ok = any(self.actor.has_role(r) for r in self.engine.sop.roles)
            if not role_ok:
                raise RoleRequired(item_id=str(self.item.id), step=self.step.key,
                                   action=self.action, actor_id=self.actor.id,
                                   role=" or ".join(self.engine.sop.roles))
            return
        role = self.engine._content_role if self.trigger == "revise" else self.step.actor
        if self.trigger == "approve" and self.step.output == "publication":
            role = self.engine.approval_step.actor  # the final approval
        assert role is not None
        if not self.actor.has_role(role):
            raise RoleRequired(item_id=str(self.item.id), step=self.step.key,
                               action=self.action, actor_id=self.actor.id, role=role)

    def check_payload(self, allowed: frozenset[str]) -> None:
        for key, value in self.payload.items():
            problem = payload_problem(key, value)
            if problem:
                raise TypeError(f"{key}= {problem}, got {type(value).__name__} {value!r:.60}")
        extra = sorted(set(self.payload) - allowed)
        if extra:
            # The message names the parameters ({text}), for callers that spell them
            # otherwise (the command line's options).
            where = ", ".join(f"{{{k}}}" for k in sorted(allowed)) or _("nothing but a note")
            raise Refused(
                _("step {step!r} of item {item} does not take {extra}; it takes {where}. "
                  "Change the concept or design with 'revise'").format(
                      step=self.step.key, item=self.item.id, extra=f"{{{extra[0]}}}",
                      where=where),
                item_id=str(self.item.id), step=self.step.key, action=self.action,
                naming=True)

    def check_fresh_approval(self) -> None:
        if not self.item.is_approved:
            raise ApprovalStale(item_id=str(self.item.id), step=self.step.key,
                                action=self.action)

    def check_final(self) -> None:
        """What would be posted is what the recheck passed (and finally approved)."""
        sop = self.engine.sop
        final = self.item.final_digest
        if sop.step_for_output("recheck") is not None:
            bound = self.item.recheck_digest
            if bound is None:
                raise RecheckStale(item_id=str(self.item.id), step=self.step.key,
                                   action=self.action,
                                   reason=_("no passed recheck binds the produced "
                                            "content"))
            if bound != final:
                raise RecheckStale(
                    item_id=str(self.item.id), step=self.step.key, action=self.action,
                    reason=_("the text or media differ from what the recheck passed; "
                             "revise the item and have it rechecked"))
        if sop.header.final_approval:
            approval = self.item.outputs.get("final_approval")
            if not isinstance(approval, Mapping) or approval.get("digest") != final:
                raise RecheckStale(
                    item_id=str(self.item.id), step=self.step.key, action=self.action,
                    reason=_("the SOP requires the coordinator's final approval of the "
                             "produced content (approve at this step) and it is missing or "
                             "covers other content"))

    def check_valid(self) -> None:
        if self.validate is None:
            return
        problems = list(self.validate(self.item, self.item.post))
        if problems:
            raise ContentInvalid(item_id=str(self.item.id), step=self.step.key,
                                 action=self.action, problems=problems)

    def with_post(self, **changes: Any) -> None:
        post = attrs.evolve(self.item.post, **changes)
        authors = self.item.authors | {self.actor.id}
        self.item = attrs.evolve(self.item, post=post, authors=authors)
        self.data.update({k: plain(v) for k, v in changes.items()})

    # -- the actions --------------------------------------------------------------------

    def _do_complete(self) -> None:
        kind = self.step.output or ""
        self.check_payload(_PAYLOAD.get(kind, frozenset()))
        getattr(self, f"_output_{kind}")()

    def _output_concept(self) -> None:
        changes = {k: self.payload[k] for k in ("text", "link", "variants", "channels")
                   if k in self.payload}
        if "text" in changes:
            changes["text"] = str(changes["text"]).strip()
        text = changes.get("text", self.item.post.text)
        if not text:
            raise self.refuse_output("concept", _("give the concept text ({text})"))
        if "channels" in changes:
            changes["channels"] = tuple(changes["channels"])
        if changes:
            self.with_post(**changes)

    def _output_notes(self) -> None:
        notes = str(self.payload.get("notes", "")).strip() or self.item.outputs.get("notes", "")
        if not notes:
            raise self.refuse_output(
                "notes", _("give the technical notes: tools, templates, assets ({notes})"))
        self.item = attrs.evolve(self.item, outputs={**self.item.outputs, "notes": notes})
        self.data["notes"] = notes

    def _output_design(self) -> None:
        changes: dict[str, Any] = {}
        if "media" in self.payload:
            changes["media"] = media_tuple(self.payload["media"])
        if "text" in self.payload:
            changes["text"] = str(self.payload["text"]).strip()
        if changes:
            self.with_post(**changes)
        if not self.item.post.media:
            raise self.refuse_output(
                "design", _("attach at least one design or video ({media})"))
        if not self.item.post.text:
            raise self.refuse_output("concept", _("the concept text is empty ({text})"))
        self.check_valid()

    def _output_production(self) -> None:
        self.check_fresh_approval()
        produced = media_tuple(self.payload["media"]) if "media" in self.payload else ()
        produced = produced or self.item.produced
        if not produced:
            raise self.refuse_output(
                "production", _("attach at least one produced design or video ({media})"))
        self.item = attrs.evolve(self.item, produced=produced,
                                 outputs={**self.item.outputs, "produced_by": self.actor.id})
        self.data["produced_by"] = self.actor.id
        if "media" in self.payload:
            self.data["media"] = plain(produced)

    def _output_publication(self) -> None:
        self.check_fresh_approval()
        self.check_final()

    def _decide(self) -> None:
        self.check_payload(frozenset())
        if self.engine.sop.header.four_eyes and self.actor.id in self.item.authors:
            raise FourEyesRequired(item_id=str(self.item.id), step=self.step.key,
                                   action=self.action, actor_id=self.actor.id)

    def _do_approve(self) -> None:
        if self.step.output == "publication":
            self._final_approval()
            return
        self._decide()
        needs_design = self.engine.sop.step_for_output("design") is not None
        if not self.item.post.text or (needs_design and not self.item.post.media):
            missing = "concept" if not self.item.post.text else "design"
            raise self.refuse_output(missing, _("there is nothing complete to approve yet"))
        self.check_valid()
        digest = self.item.post.digest
        answer = {"by": self.actor.id, "answer": self.note or "approved", "digest": digest}
        self.item = attrs.evolve(self.item, approved_digest=digest,
                                 outputs={**self.item.outputs, "approval": answer})
        self.data["digest"] = digest

    def _final_approval(self) -> None:
        """The coordinator approves the produced content, as the recheck passed it."""
        self.check_payload(frozenset())
        role = self.engine.approval_step.actor
        assert role is not None
        if not self.actor.has_role(role):
            raise RoleRequired(item_id=str(self.item.id), step=self.step.key,
                               action=self.action, actor_id=self.actor.id, role=role)
        producer = self.item.outputs.get("produced_by")
        if self.engine.sop.header.four_eyes and (
                self.actor.id in self.item.authors or self.actor.id == producer):
            raise FourEyesRequired(item_id=str(self.item.id), step=self.step.key,
                                   action=self.action, actor_id=self.actor.id)
        self.check_fresh_approval()
        digest = self.item.final_digest
        if self.engine.sop.step_for_output("recheck") is not None \
                and self.item.recheck_digest != digest:
            raise RecheckStale(item_id=str(self.item.id), step=self.step.key,
                               action=self.action,
                               reason=_("the produced content is not what the recheck "
                                        "passed"))
        answer = {"by": self.actor.id, "answer": self.note or "approved", "digest": digest}
        self.item = attrs.evolve(self.item,
                                 outputs={**self.item.outputs, "final_approval": answer})
        self.data["final_digest"] = digest

    def _do_reject(self) -> None:
        self._decide()
        if not self.note:
            raise self.refuse_output("reason", _("say why the concept is rejected ({reason})"))
        self.item = attrs.evolve(self.item, approved_digest=None)

    def _do_pass(self) -> None:
        self.check_payload(frozenset())
        self.check_fresh_approval()
        if not self.item.media_to_post:
            raise self.refuse_output("production", _("there is no produced media to recheck"))
        producer = self.item.outputs.get("produced_by")
        if self.engine.sop.header.recheck_by_other and self.actor.id == producer:
            raise Refused(
                _("{actor_id!r} cannot pass the recheck of item {item_id}: they "
                  "produced the content, and the SOP requires another person to recheck it "
                  "(recheck_by_other)").format(actor_id=self.actor.id, item_id=self.item.id),
                item_id=str(self.item.id), step=self.step.key, action=self.action)
        # The recheck binds what will be posted: the final text and the produced bytes.
        digest = self.item.final_digest
        result = {"by": self.actor.id, "result": "pass", "note": self.note, "digest": digest}
        self.item = attrs.evolve(self.item, outputs={**self.item.outputs, "recheck": result})
        self.data["digest"] = digest

    def _do_rework(self) -> None:
        self.check_payload(frozenset())
        if not self.note:
            raise self.refuse_output("findings",
                                     _("say what must be reworked ({findings})"))
        result = {"by": self.actor.id, "result": "rework", "note": self.note}
        self.item = attrs.evolve(self.item, outputs={**self.item.outputs, "recheck": result})

    def _do_revise(self) -> None:
        self.check_payload(_REVISE_KEYS)
        if not self.payload:
            raise self.refuse_output("revision", _("give what changes: {text}, {media}, "
                                                   "{link}, {variants} or {channels}"))
        changes = dict(self.payload)
        if "media" in changes:
            changes["media"] = media_tuple(changes["media"])
        if "channels" in changes:
            changes["channels"] = tuple(changes["channels"])
        if "text" in changes:
            changes["text"] = str(changes["text"]).strip()
        self.with_post(**changes)
        if self.item.post == self.original.post:
            raise self.refuse_output("revision", _("the changes equal the current content; "
                                                   "nothing to revise"))
        if self.item.approved_digest is not None and not self.item.is_approved:
            self.item = attrs.evolve(self.item, approved_digest=None)
            self.data["approval_withdrawn"] = True

    def _do_cancel(self) -> None:
        self.check_payload(frozenset())
        if not self.note:
            raise self.refuse_output("reason", _("say why the item is cancelled ({reason})"))


def _variant_problem(value: Any) -> str:
    """What is wrong with one channel's variant, or ``""``."""
    if isinstance(value, (str, Variant)):
        return ""
    if not isinstance(value, Mapping):
        return "must be a text or a mapping with text, media and options"
    unknown = sorted(set(value) - VARIANT_KEYS)
    if unknown:
        return f"takes text, media and options, not {unknown[0]!r}"
    if value.get("text") is not None and not isinstance(value["text"], str):
        return "text must be a string"
    media = value.get("media")
    if media is not None and (isinstance(media, (str, bytes)) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in media)):
        return "media must list positions of the item's media (0, 1, ...)"
    options = value.get("options")
    if options is not None:
        if not (isinstance(options, Mapping) and all(isinstance(k, str) for k in options)):
            return "options must map option names to values"
        try:
            json.dumps(options, allow_nan=False)
        except (TypeError, ValueError):
            return "options must be plain values (text, numbers, true/false, lists, tables)"
    return ""


def payload_problem(key: str, value: Any) -> str:
    """What is wrong with one output value's type, or ``""``."""
    if key in ("text", "notes", "link"):
        return "" if isinstance(value, str) else "must be a string"
    if key == "variants":
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            return ("must map channel names to texts or variants "
                    "({'x': '...'} or {'x': {'text': ..., 'media': [0], 'options': {...}}})")
        for name, variant in value.items():
            problem = _variant_problem(variant)
            if problem:
                return f"variant {name!r}: {problem}"
        return ""
    if key == "channels":
        ok = not isinstance(value, str) and isinstance(value, (list, tuple, set, frozenset)) \
            and all(isinstance(c, str) for c in value)
        return "" if ok else "must be a list of channel names"
    if key == "media":
        items = [value] if isinstance(value, (str, Media, Mapping)) else value
        ok = isinstance(items, (list, tuple)) and all(
            isinstance(m, (str, Media)) or (isinstance(m, Mapping) and "source" in m)
            for m in items)
        return "" if ok else "must be a path, a URL, a Media, or a list of them"
    return ""


