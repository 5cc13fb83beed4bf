"""Carrying items recorded before the media store forward (schema migration 3).

Before the media store, items recorded media by path, and the approval covered those
paths. When an office opens a store migrated from then, each such media file is copied
into the media store if it is still there (a regular file outside /proc, /sys and /dev,
within the size limit), or flagged ``missing``; posting refuses missing media. A URL is
kept as a pass-through URL: the old code handed it to the platforms as it was. An
approval or passed recheck that was current under the old rules is carried forward to
the stored bytes. Each changed item gets a ``media_import`` event saying what was done.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from humasflow import i18n
from humasflow.errors import MediaRefused
from humasflow.mediastore import AttachRules, attach
from humasflow.models import ContentItem, Event, Media

if TYPE_CHECKING:
    from humasflow.office import Office
    from humasflow.storage.store import Store

__all__ = ["import_media"]

#: The actor named in the events of the import.
IMPORT_ACTOR = "humasflow"


def _legacy_digest(item: ContentItem) -> str:
    """The approval digest as computed before the media store (over paths)."""
    blob = json.dumps(item.post.to_dict(), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def import_media(office: Office, store: Store) -> int:
    """Import the organisation's media recorded by path; return how many items changed."""
    # Anything the old code accepted, except what is never read (/proc, /sys, /dev).
    rules = AttachRules(roots=(Path("/"),), max_bytes=office.media_max_bytes)
    changed = skipped = 0
    for before in store.items(office.org):
        legacy = [m for m in (*before.post.media, *before.produced)
                  if not m.is_stored and not m.passthrough and not m.missing]
        was_approved = (before.approved_digest is not None
                        and before.approved_digest == _legacy_digest(before))
        recheck = before.outputs.get("recheck")
        old_recheck = (isinstance(recheck, dict) and recheck.get("result") == "pass"
                       and not recheck.get("digest"))
        if not legacy and not (was_approved and before.approved_digest != before.post.digest):
            continue
        results: dict[str, Any] = {}

        def carry(m: Media, results: dict[str, Any] = results) -> Media:
            if m.is_stored or m.passthrough or m.missing:
                return m
            if m.is_url:
                # What the old code posted, and so what was approved: the URL itself.
                return attrs.evolve(m, passthrough=True)
            if m.source not in results:
                # The refusal goes into the record, which stays in the source language.
                try:
                    with i18n.use(i18n.DEFAULT_LANGUAGE):
                        results[m.source] = attach(office.media, m, rules,
                                                   session_factory=office.session_factory)
                except MediaRefused as exc:
                    results[m.source] = attrs.evolve(m, missing=True), str(exc)
            found = results[m.source]
            stored: Media = found[0] if isinstance(found, tuple) else found
            return attrs.evolve(stored, alt=m.alt)

        post = attrs.evolve(before.post, media=tuple(carry(m) for m in before.post.media))
        item = attrs.evolve(before, post=post, produced=tuple(carry(m) for m in before.produced))
        data: dict[str, Any] = {
            "media": [m.to_dict() for m in item.post.media],
            "produced": [m.to_dict() for m in item.produced],
            # The sources flagged missing, each with the rule that kept it out.
            "missing": {s: r[1] for s, r in sorted(results.items()) if isinstance(r, tuple)},
        }
        if was_approved:
            item = attrs.evolve(item, approved_digest=item.post.digest)
            data["approved_digest"] = item.approved_digest
        if was_approved and old_recheck and item.state == _posting_step(office, item):
            assert isinstance(recheck, dict)
            item = attrs.evolve(item, outputs={
                **item.outputs, "recheck": {**recheck, "digest": item.final_digest}})
            data["recheck_digest"] = item.final_digest
        with store.writing() as conn:
            _, found = store.snapshot(conn, office.org, before.id, IMPORT_ACTOR)
            if found is None or found[0].version != before.version:
                skipped += 1  # changed meanwhile: it is imported on the next open
                continue
            event = Event(org=office.org, stream="", seq=0, at=office.now(),
                          actor=IMPORT_ACTOR, action="media_import", from_state=item.state,
                          to_state=item.state,
                          note="media recorded by path imported into the media store",
                          data=data)
            store.apply(conn, item, before.version, found[1], event, new_step=False)
        changed += 1
    if not skipped:
        with store.writing() as conn:
            store.finish_media_import(conn, office.org, office.now())
    return changed


def _posting_step(office: Office, item: ContentItem) -> str | None:
    step = office.sop(item.sop_revision).step_for_output("publication")
    return step.key if step else None
