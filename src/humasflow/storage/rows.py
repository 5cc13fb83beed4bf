"""Row digests: what lets :func:`humasflow.audit.verify` check the tables, not only the
events.

Every write that changes a tracked row (an item, a channel's publication record, an
actor, a channel, an SOP revision) also puts the digest of what it wrote into the data
of the event that records it, under ``data["rows"]``::

    {"rows": {"items": {"12": {"state": "…", "content": "…", …}}}}

A digest is taken per *column group* (``state``, ``content``, ``approval``…), from the
values as written, so a check can say which group of a row no event explains. The
groups are computed from the table's SQLAlchemy metadata: a column named in
:data:`GROUPS` belongs to its group, any other column is a group of its own, and only
the columns in :data:`EXCLUDED` (those that legitimately change without an event) are
left out. A column added to a table later is therefore covered without any change here.

A write that changes only some of a row's groups digests only those; the check compares
each group of today's row with the latest event that digested that group.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from humasflow.storage import schema as t

__all__ = ["EXCLUDED", "GROUPS", "TRACKED", "group_of", "row_digests", "row_key"]

#: The tables whose rows are checked against the record.
TRACKED = ("items", "publications", "actors", "channels", "sop_revisions",
           "corrective_actions")

#: Columns that change without an event, so no digest covers them.
EXCLUDED: Mapping[str, frozenset[str]] = {
    # The head of the item's own chain: checked by the chain itself.
    # ``breach_reported``: the once-per-breach marker set by check_sla (no event).
    "items": frozenset({"version", "head_hash", "breach_reported"}),
    # Claims, leases, heartbeats, saved progress and retry times change while an attempt
    # runs, without an event; the outcome (state, platform id, url, error) is recorded.
    "publications": frozenset({"attempts", "updated_at", "next_attempt_at", "claimed_by",
                               "lease_until", "progress"}),
    "actors": frozenset(),
    "channels": frozenset(),
    "sop_revisions": frozenset(),
    "corrective_actions": frozenset(),
}

#: Named groups of columns; a column not named here is a group of its own.
GROUPS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "items": {
        "identity": ("id", "org", "sop_revision", "created_by", "created_at"),
        "content": ("title", "post", "outputs"),
        "approval": ("approved_digest",),
        "step": ("step_started_at", "due_at"),
        "schedule": ("post_at", "post_by"),
    },
    "publications": {
        "identity": ("item_id", "channel", "org"),
        "outcome": ("platform_id", "url"),
        "error": ("error_class", "error_message"),
    },
    "actors": {"identity": ("org", "id")},
    "channels": {"identity": ("org", "name"), "credentials": ("credentials",)},
    "sop_revisions": {
        "identity": ("id", "org"),
        "definition": ("number", "title", "definition", "digest"),
        "establishment": ("established_by", "established_at", "effective_from"),
    },
    "corrective_actions": {
        "identity": ("org", "id", "subject", "target", "created_by", "created_at"),
    },
}

_KEYS: Mapping[str, tuple[str, ...]] = {
    "items": ("id",), "publications": ("item_id", "channel"), "actors": ("id",),
    "channels": ("name",), "sop_revisions": ("id",), "corrective_actions": ("id",),
}

_TABLES: Mapping[str, sa.Table] = {name: t.metadata.tables[name] for name in TRACKED}


def group_of(table: str, column: str) -> str:
    """The group a column belongs to."""
    for group, columns in GROUPS[table].items():
        if column in columns:
            return group
    return column


def _layout(table: str) -> dict[str, tuple[str, ...]]:
    """Each group of ``table`` with its columns, from the metadata."""
    layout: dict[str, list[str]] = {}
    for column in _TABLES[table].columns:
        if column.name not in EXCLUDED[table]:
            layout.setdefault(group_of(table, column.name), []).append(column.name)
    return {group: tuple(columns) for group, columns in layout.items()}


_LAYOUTS = {name: _layout(name) for name in TRACKED}


def row_key(table: str, values: Mapping[str, Any]) -> str:
    """The key a row is known by in ``data["rows"][table]`` (``"12"``, ``"12/outbox"``)."""
    return "/".join(str(values[k]) for k in _KEYS[table])


# One encoder, built once: this runs on every transition.
_ENCODE = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                           default=str).encode
_UTC = dt.timezone.utc


def _encode(value: Any) -> str:
    """An unambiguous text for one column's value (``repr`` of scalars, JSON of the rest,
    timestamps in UTC): the same for a value about to be written and for it read back."""
    kind = type(value)
    if value is None or kind is str or kind is int:
        return repr(value)
    if kind is dt.datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=_UTC)
        return "T" + str(value.astimezone(_UTC).isoformat(timespec="microseconds"))
    if isinstance(value, (frozenset, set)):
        value = sorted(value)
    return "J" + _ENCODE(value)


def row_digests(table: str, values: Mapping[str, Any], *,
                groups: Iterable[str] | None = None,
                encoded: Mapping[str, str] | None = None) -> dict[str, str]:
    """The digest of each group of ``table`` whose columns are all in ``values``.

    The same function digests what a write is about to store and, later, the row read
    back, so both must give the same values (JSON columns as plain data, timestamps as
    aware datetimes). ``encoded`` may hold the :func:`encode_json` text of JSON columns
    whose values are lists or mappings, where the caller has it already.

    Raises:
        ValueError: ``values`` holds some but not all columns of a group (a write must
            store a group whole, or its digest cannot be taken).
    """
    wanted = set(groups) if groups is not None else None
    known = encoded or {}
    shape = (table, tuple(values), tuple(known))
    plan = _PLANS.get(shape)
    if plan is None:
        plan = _plan(table, values, known)
        if len(_PLANS) < 1024:  # a few shapes in practice: one per kind of write
            _PLANS[shape] = plan
    sha256 = hashlib.sha256
    digests = {}
    for group, columns in plan:
        if wanted is not None and group not in wanted:
            continue
        blob = "\0".join([f"{c}\1J{known[c]}" if c in known else f"{c}\1{_encode(values[c])}"
                          for c in columns])
        digests[group] = sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return digests


_PLANS: dict[tuple[Any, ...], tuple[tuple[str, tuple[str, ...]], ...]] = {}


def _plan(table: str, values: Mapping[str, Any],
          known: Mapping[str, str]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The groups of ``table`` a write of these columns stores whole, in layout order.

    Raises:
        ValueError: The write stores part of a group.
    """
    plan = []
    for group, columns in _LAYOUTS[table].items():
        missing = [c for c in columns if c not in values and c not in known]
        if not missing:
            plan.append((group, columns))
        elif len(missing) < len(columns):
            raise ValueError(f"a write to {table} stores part of the column group {group!r} "
                             f"(missing {', '.join(sorted(missing))}); store the whole "
                             "group")
    return tuple(plan)


# The same JSON without turning unknown values into text: a value that JSON cannot hold
# is refused where it is written, as the JSON column would refuse it.
_ENCODE_STRICT = json.JSONEncoder(sort_keys=True, ensure_ascii=False,
                                  separators=(",", ":")).encode


def encode_json(value: Any) -> str:
    """The JSON text :func:`row_digests` digests a JSON column's value by (sorted keys,
    no spaces; the same text :func:`humasflow.models.content_digest` hashes), for a
    value that is a list or a mapping of JSON data."""
    return _ENCODE_STRICT(value)


def stash(conn: sa.Connection, table: str, key: str, values: Mapping[str, Any]) -> None:
    """Remember the digests of a write to row ``key`` in ``conn``'s transaction, for the
    event that records it (appended next in the same transaction) to carry."""
    digests = row_digests(table, values)
    if digests:
        pending = conn.info.setdefault("humasflow_rows", {})
        pending.setdefault(table, {}).setdefault(key, {}).update(digests)


def take(conn: sa.Connection) -> dict[str, Any]:
    """The digests stashed in ``conn`` since the last event, cleared."""
    pending: dict[str, Any] = conn.info.pop("humasflow_rows", None) or {}
    return pending


def with_rows(data: Mapping[str, Any], rows: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with ``rows`` merged into its ``"rows"`` entry."""
    if not rows:
        return dict(data)
    merged = {table: {key: dict(groups) for key, groups in keyed.items()}
              for table, keyed in dict(data.get("rows") or {}).items()}
    for table, keyed in rows.items():
        for key, groups in keyed.items():
            merged.setdefault(table, {}).setdefault(key, {}).update(groups)
    return {**data, "rows": merged}


def current_rows(conn: sa.Connection, org: str) -> dict[str, list[dict[str, Any]]]:
    """Every tracked row of the organisation, as stored."""
    rows = {}
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names())
    for name in TRACKED:
        table = _TABLES[name]
        if name not in present:
            continue  # a migration that runs before the one creating the table
        # A migration that runs before a later one adds a column reads what is there.
        stored = {c["name"] for c in inspector.get_columns(name)}
        query = sa.select(*(c for c in table.columns if c.name in stored)).where(
            table.c.org == org)
        rows[name] = [dict(r._mapping) for r in conn.execute(query)]
    return rows


def heads_digest(streams: Mapping[str, Any]) -> str:
    """The digest of a checkpoint's stream heads (``{stream: [seq, hash]}``)."""
    blob = json.dumps({s: list(v) for s, v in streams.items()}, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


#: A channel's record as it is created (``pending``, no outcome), before any event.
INITIAL_PUBLICATION: Mapping[str, Any] = {"state": "pending", "platform_id": None, "url": None,
                                          "error_class": None, "error_message": None}
