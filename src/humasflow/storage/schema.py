"""The tables, and the ordered list of schema migrations that create them.

A store records the schema version it was migrated to in ``schema_migrations``.
:data:`MIGRATIONS` is append-only: a released migration is never edited; a change of
schema is a new entry at the end.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

__all__ = ["MIGRATIONS", "SQLITE_RANK_INDEX", "UTCDateTime", "fill_step_visits", "metadata",
           "visit_seconds"]


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """Timestamps stored in UTC and read back as aware datetimes.

    SQLite keeps them as sortable ISO text, PostgreSQL as ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware (UTC) datetime")
        value = value.astimezone(dt.timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        assert isinstance(value, dt.datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


metadata = sa.MetaData()

schema_migrations = sa.Table(
    "schema_migrations", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
)

orgs = sa.Table(
    "orgs", metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    # The head of the organisation's own record stream (SOP revisions, actors, channels).
    sa.Column("version", sa.Integer, nullable=False, default=0),
    sa.Column("head_hash", sa.String(64), nullable=False, default=""),
)

sop_revisions = sa.Table(
    "sop_revisions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("org", sa.String(100), sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("number", sa.String(200), nullable=False),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("definition", sa.JSON, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("established_by", sa.String(200), nullable=False),
    sa.Column("established_at", UTCDateTime, nullable=False),
    sa.Column("effective_from", UTCDateTime, nullable=False),
    sa.Index("ix_sop_revisions_org", "org", "effective_from"),
)

actors = sa.Table(
    "actors", metadata,
    sa.Column("org", sa.String(100), sa.ForeignKey("orgs.id"), primary_key=True),
    sa.Column("id", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(300), nullable=False),
    sa.Column("email", sa.String(300), nullable=False, default=""),
    # Roles as a sorted, comma-separated list: read with the actor in one row.
    sa.Column("roles", sa.String(1000), nullable=False, default=""),
    # A deactivated actor keeps their row (records point to it) but cannot act.
    sa.Column("active", sa.Boolean, nullable=False, default=True, server_default=sa.true()),
    # The language mail to them is written in ("id", "en"); None: the office's.
    sa.Column("language", sa.String(8)),
)

items = sa.Table(
    "items", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("org", sa.String(100), sa.ForeignKey("orgs.id"), nullable=False),
    sa.Column("sop_revision", sa.Integer, sa.ForeignKey("sop_revisions.id"), nullable=False),
    sa.Column("title", sa.String(500), nullable=False),
    sa.Column("state", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("post", sa.JSON, nullable=False),
    sa.Column("produced", sa.JSON, nullable=False),
    sa.Column("outputs", sa.JSON, nullable=False),
    sa.Column("authors", sa.JSON, nullable=False),
    sa.Column("approved_digest", sa.String(64)),
    sa.Column("assignee", sa.String(200)),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("step_started_at", UTCDateTime, nullable=False),
    sa.Column("due_at", UTCDateTime),
    # The version at which the current step's breach was reported (once per breach).
    sa.Column("breach_reported", sa.Integer),
    # When posting is due (set by schedule() or post()), and by whose authority.
    sa.Column("post_at", UTCDateTime),
    sa.Column("post_by", sa.String(200)),
    # ContentItem.content_digest as written (migration 3): what posting claims check.
    sa.Column("content_digest", sa.String(64)),
    # A globally unique key (a UUID) made at creation: the item's identity beyond this
    # store, from which posts' idempotency keys are built.
    sa.Column("key", sa.String(36)),
    sa.Index("ix_items_org_state", "org", "state"),
    sa.Index("ix_items_due", "due_at"),
    sa.Index("ix_items_post_at", "post_at"),
)

events = sa.Table(
    "events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("org", sa.String(100), nullable=False),
    sa.Column("stream", sa.String(100), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(100), nullable=False),
    sa.Column("from_state", sa.String(100)),
    sa.Column("to_state", sa.String(100)),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    # Scoped by org: every organisation has its own "org" stream, numbered from 1.
    sa.UniqueConstraint("org", "stream", "seq", name="uq_events_stream_seq"),
    sa.Index("ix_events_org", "org", "id"),
)

channels = sa.Table(
    "channels", metadata,
    sa.Column("org", sa.String(100), sa.ForeignKey("orgs.id"), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("publisher", sa.String(100), nullable=False),
    sa.Column("settings", sa.JSON, nullable=False),
    # Credential name -> environment variable name. Never the secret itself.
    sa.Column("credentials", sa.JSON, nullable=False),
    # A deactivated channel keeps its row (records point to it) but is not posted to.
    sa.Column("active", sa.Boolean, nullable=False, default=True, server_default=sa.true()),
)

publications = sa.Table(
    "publications", metadata,
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), primary_key=True),
    sa.Column("channel", sa.String(100), primary_key=True),
    sa.Column("org", sa.String(100), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("platform_id", sa.String(200)),
    sa.Column("url", sa.String(2000)),
    sa.Column("error_class", sa.String(100)),
    sa.Column("error_message", sa.Text),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # When a failed attempt may be retried (None: not automatically).
    sa.Column("next_attempt_at", UTCDateTime),
    # Who holds an in-flight attempt, and until when (a crashed worker's lease runs out).
    sa.Column("claimed_by", sa.String(200)),
    sa.Column("lease_until", UTCDateTime),
    # What a multi-step publisher saved on the way (uploaded media ids, container id…).
    sa.Column("progress", sa.JSON, nullable=False, default=lambda: {}),
    sa.Index("ix_publications_due", "state", "next_attempt_at"),
)


# Known expiry times of the credentials channels name (never their values), by reference.
credential_expiries = sa.Table(
    "credential_expiries", metadata,
    sa.Column("org", sa.String(100), sa.ForeignKey("orgs.id"), primary_key=True),
    sa.Column("reference", sa.String(200), primary_key=True),
    # The channel and credential name that last reported it.
    sa.Column("channel", sa.String(100), nullable=False),
    sa.Column("credential", sa.String(200), nullable=False),
    # None: a rotation whose new expiry is not known.
    sa.Column("expires_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("rotated_at", UTCDateTime),
    # When its holders were last warned (check_credentials warns once as it comes near
    # its expiry, and once more when it has expired).
    sa.Column("warned_for", UTCDateTime),
)

#: Facts about the store itself (``uuid``: the store's identity, made at creation).
store_meta = sa.Table(
    "store_meta", metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.String(1000), nullable=False),
)

media_imports = sa.Table(
    "media_imports", metadata,
    # An organisation whose items recorded media by path before the media store: the
    # office imports their bytes (or flags them missing) when it opens, then sets done_at.
    sa.Column("org", sa.String(100), primary_key=True),
    sa.Column("done_at", UTCDateTime),
)

# Replies to approval requests that were processed (answered or refused), by the digest
# of their Message-ID: claimed in the transaction that records the answer, so a reply
# is applied once whatever number of pollers read it.
mail_replies = sa.Table(
    "mail_replies", metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("org", sa.String(100), nullable=False),
    sa.Column("message_id", sa.String(998), nullable=False),
    sa.Column("item_id", sa.Integer),
    sa.Column("outcome", sa.String(30), nullable=False),
    sa.Column("processed_at", UTCDateTime, nullable=False),
)

# Approval tokens whose answer was accepted, by nonce: a token answers once.
mail_tokens = sa.Table(
    "mail_tokens", metadata,
    sa.Column("nonce", sa.String(16), primary_key=True),
    sa.Column("org", sa.String(100), nullable=False),
    sa.Column("item_id", sa.Integer, nullable=False),
    sa.Column("reply_key", sa.String(64), nullable=False),
    sa.Column("used_at", UTCDateTime, nullable=False),
)

corrective_actions = sa.Table(
    "corrective_actions", metadata,
    sa.Column("org", sa.String(100), sa.ForeignKey("orgs.id"), primary_key=True),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    # What the action is recorded against: "report", "breach" or "item", and its target
    # ("2026-01-01/2026-01-31", "12/approve_concept", "12").
    sa.Column("subject", sa.String(20), nullable=False),
    sa.Column("target", sa.String(300), nullable=False),
    sa.Column("finding", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("due", sa.Date, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("closing_note", sa.Text, nullable=False, default=""),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_corrective_actions_due", "org", "status", "due"),
)

# Mail waiting to be sent, sent, or given up on: one row per message and recipient.
# A row is written in the transaction of what it reports (an item entering its approval
# step), and composed only when it is sent, in the recipient's language then.
mail_queue = sa.Table(
    "mail_queue", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("org", sa.String(100), nullable=False),
    sa.Column("kind", sa.String(50), nullable=False),
    sa.Column("item_id", sa.Integer),
    # The recipient's actor id, and the address and language they had when queued.
    sa.Column("recipient", sa.String(200), nullable=False),
    sa.Column("address", sa.String(300), nullable=False),
    sa.Column("language", sa.String(8), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    # When the next attempt is due; while a sender holds the row ("sending"), when its
    # claim runs out (a crashed sender's rows are sent again after that).
    sa.Column("next_attempt_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    # queued, sending, sent, failed (given up) or obsolete (no longer relevant).
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("message_id", sa.String(998)),
    sa.Index("ix_mail_queue_due", "status", "next_attempt_at"),
    sa.Index("ix_mail_queue_org", "org", "id"),
    sa.Index("ix_mail_queue_item", "item_id", "kind", "status"),
)


# One row per stay of an item at a step that has ended: from the move that brought the
# item there to the move that took it on (what the evaluation report aggregates). The
# stay at the item's current step is its row in ``items`` (state, step_started_at).
# Written in the transaction of the move that ends it; derived from the events, so
# ``verify`` re-derives it.
step_visits = sa.Table(
    "step_visits", metadata,
    sa.Column("org", sa.String(100), nullable=False),
    sa.Column("item_id", sa.Integer, nullable=False),
    # The item's SOP revision: the standard time the visit is measured against.
    sa.Column("sop_revision", sa.Integer, nullable=False),
    sa.Column("step", sa.String(100), nullable=False),
    sa.Column("entered_at", UTCDateTime, nullable=False),
    sa.Column("left_at", UTCDateTime, nullable=False),
    # The move that ended the visit: who made it, its action (complete, reject,
    # rework, cancel…) and its note (the reason of a rejection or a rework).
    sa.Column("left_by", sa.String(200), nullable=False),
    sa.Column("outcome", sa.String(100), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    # left_at - entered_at in seconds (wall clock), as the report's SQL would compute it.
    sa.Column("seconds", sa.Float, nullable=False),
    # The report's period: the visits that ended in it (and those open at its end).
    sa.Index("ix_step_visits_left", "org", "left_at"),
)


#: The index of step_visits by step and duration, on SQLite only (migration 12).
SQLITE_RANK_INDEX = "ix_step_visits_rank"


def visit_seconds(dialect: str, end: Any, start: Any) -> Any:
    """The seconds from ``start`` to ``end``, in SQL (the same on every path that writes
    :data:`step_visits`)."""
    if dialect == "sqlite":
        # Times are ISO text; julianday's double keeps milliseconds, rounded here.
        return sa.func.round((sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0, 3)
    return sa.cast(sa.extract("epoch", end - start), sa.Float)


def fill_step_visits(conn: Connection, org: str | None = None) -> int:
    """Derive the ended visits from the events into :data:`step_visits` (one
    ``INSERT … SELECT``); return how many were written. ``org``: only that organisation's.

    A visit ends at the item's next *move*: an event whose ``from_state`` differs from
    its ``to_state`` (a creation starts the first visit). The caller makes sure the
    table holds none of those visits yet.
    """
    ev = events
    where = [ev.c.stream.like("item:%"),
             sa.or_(ev.c.action == "create", ev.c.from_state.is_distinct_from(ev.c.to_state))]
    if org is not None:
        where.append(ev.c.org == org)
    moves = sa.select(ev.c.id, ev.c.org, ev.c.stream, ev.c.seq, ev.c.at, ev.c.to_state,
                      ).where(*where).cte("moves")
    # One ``lead`` (the next move's id), that move read by its key: SQLite's window
    # functions cost about as much per column as the rest of the scan.
    paired = sa.select(
        moves.c.org, moves.c.stream, moves.c.to_state.label("step"),
        moves.c.at.label("entered_at"),
        sa.func.lead(moves.c.id, type_=sa.Integer).over(
            partition_by=moves.c.stream, order_by=moves.c.seq).label("next_id"),
    ).subquery("paired")
    nxt = ev.alias("next_move")
    item_id = sa.cast(sa.func.substr(paired.c.stream, 6), sa.Integer)
    dialect = conn.dialect.name
    query = (sa.select(paired.c.org, items.c.id, items.c.sop_revision, paired.c.step,
                       paired.c.entered_at, nxt.c.at, nxt.c.actor, nxt.c.action, nxt.c.note,
                       visit_seconds(dialect, nxt.c.at, paired.c.entered_at))
             .select_from(paired.join(nxt, nxt.c.id == paired.c.next_id)
                          .join(items, sa.and_(items.c.id == item_id,
                                               items.c.org == paired.c.org)))
             # In the order they ended, as moves write them: a period's visits are then
             # next to each other in the table (SQLite keeps rows in insertion order).
             .order_by(nxt.c.at))
    columns = ["org", "item_id", "sop_revision", "step", "entered_at", "left_at", "left_by",
               "outcome", "reason", "seconds"]
    count = sa.select(sa.func.count()).select_from(step_visits)
    if org is not None:
        count = count.where(step_visits.c.org == org)
    before = int(conn.execute(count).scalar_one())
    conn.execute(step_visits.insert().from_select(columns, query))
    return int(conn.execute(count).scalar_one()) - before


def _initial(conn: Connection) -> None:
    for table in (orgs, sop_revisions, actors, items, events, channels, publications):
        table.create(conn)


def _list_indexes(conn: Connection) -> None:
    # What a coordinator opens most: late items and one person's items, per organisation.
    conn.execute(sa.text("CREATE INDEX ix_items_org_due ON items (org, due_at)"))
    conn.execute(sa.text("CREATE INDEX ix_items_org_assignee ON items (org, assignee)"))


def _content_digest(conn: Connection) -> None:
    # Posting claims a channel only while the item still has the content that was
    # checked; the digest makes that one condition of the claim's own transaction.
    from humasflow.models import content_digest

    # A new store's tables are created from this module's (latest) definitions.
    if "content_digest" not in {c["name"] for c in sa.inspect(conn).get_columns("items")}:
        conn.execute(sa.text("ALTER TABLE items ADD COLUMN content_digest VARCHAR(64)"))
    rows = conn.execute(sa.select(items.c.id, items.c.post, items.c.produced, items.c.outputs,
                                  items.c.approved_digest)).fetchall()
    for row in rows:
        conn.execute(items.update().where(items.c.id == row.id).values(
            content_digest=content_digest(row.post, row.produced, row.outputs,
                                          row.approved_digest)))


def _row_digest_baseline(conn: Connection) -> None:
    # Rows written before events carried row digests: record what they hold now, so that
    # verify explains them (it cannot tell what happened to them before).
    from humasflow.storage.store import record_baseline  # the store imports this module

    record_baseline(conn, "rows as they stood when the record started covering them")


def _credential_expiries(conn: Connection) -> None:
    credential_expiries.create(conn, checkfirst=True)  # idempotent, like migration 3


def _identity_and_activity(conn: Connection) -> None:
    # The first migration creates tables from the current definitions, so a store made
    # now already has the new columns: add only what is missing.
    existing = {name: {c["name"] for c in sa.inspect(conn).get_columns(name)}
                for name in ("items", "actors", "channels")}
    if "key" not in existing["items"]:
        conn.execute(sa.text("ALTER TABLE items ADD COLUMN key VARCHAR(36)"))
    for table in ("actors", "channels"):
        if "active" not in existing[table]:
            conn.execute(sa.text(
                f"ALTER TABLE {table} ADD COLUMN active BOOLEAN NOT NULL DEFAULT TRUE"))
    ids = conn.execute(sa.select(items.c.id).where(items.c.key.is_(None))).scalars().all()
    for item_id in ids:
        conn.execute(items.update().where(items.c.id == item_id)
                     .values(key=str(uuid.uuid4())))
    conn.execute(sa.text("CREATE UNIQUE INDEX IF NOT EXISTS ux_items_key ON items (key)"))
    store_meta.create(conn, checkfirst=True)
    if conn.execute(sa.select(store_meta.c.key).where(store_meta.c.key == "uuid")).first() is None:
        conn.execute(store_meta.insert().values(key="uuid", value=str(uuid.uuid4())))


def _media_store(conn: Connection) -> None:
    # Bytes cannot be copied here (a migration knows no media store): the organisations
    # that have items are marked, and each office imports its media when it opens.
    media_imports.create(conn, checkfirst=True)  # idempotent, like migration 3
    conn.execute(sa.text("INSERT INTO media_imports (org) SELECT DISTINCT org FROM items "
                         "WHERE org NOT IN (SELECT org FROM media_imports)"))


def _mail_replies(conn: Connection) -> None:
    mail_replies.create(conn, checkfirst=True)  # idempotent, like migration 3
    mail_tokens.create(conn, checkfirst=True)


def _corrective_actions(conn: Connection) -> None:
    corrective_actions.create(conn, checkfirst=True)  # idempotent, like migration 3


def _mail_queue(conn: Connection) -> None:
    mail_queue.create(conn, checkfirst=True)  # idempotent, like migration 3
    if "language" not in {c["name"] for c in sa.inspect(conn).get_columns("actors")}:
        conn.execute(sa.text("ALTER TABLE actors ADD COLUMN language VARCHAR(8)"))
        # A column added to a tracked table: record what the rows hold now, so that
        # verify explains the new column of the actors written before it.
        from humasflow.storage.store import record_baseline  # the store imports this module

        record_baseline(conn, "actors gained a language for the mail sent to them")


def _credential_warnings(conn: Connection) -> None:
    columns = {c["name"] for c in sa.inspect(conn).get_columns("credential_expiries")}
    if "warned_for" not in columns:  # a store made now has it from the first migration
        timestamp = "TIMESTAMP WITH TIME ZONE" if conn.dialect.name == "postgresql" \
            else "DATETIME"
        conn.execute(sa.text(
            f"ALTER TABLE credential_expiries ADD COLUMN warned_for {timestamp}"))


def _step_visits(conn: Connection) -> None:
    # The report reads the visits it counts through an index on when they ended instead
    # of pairing every event with the next; the visits of the events already recorded
    # are derived once here, so an old store gives the report it gave before.
    step_visits.create(conn, checkfirst=True)  # idempotent, like migration 3
    if conn.execute(sa.select(sa.literal(1)).select_from(step_visits).limit(1)).first() is None:
        fill_step_visits(conn)
    if conn.dialect.name == "sqlite":
        # SQLite has no ordered-set aggregate, and groups by sorting every row: the report
        # walks this index, in the order of the steps and of their durations, to the
        # nearest ranks and for the per-step counts, without reading a table row
        # (PostgreSQL sorts the durations and hashes the groups itself).
        conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS {SQLITE_RANK_INDEX} ON step_visits "
                             "(org, step, seconds, left_at, sop_revision, outcome)"))


def _covering_rank_index(conn: Connection) -> None:
    # SQLite: the rank index also holds what a breach of the report shows (the item, when
    # the visit began, who ended it), so the report reads its breaches, per step from the
    # standard time up, from the index alone instead of one table row each.
    if conn.dialect.name == "sqlite":
        conn.execute(sa.text(f"DROP INDEX IF EXISTS {SQLITE_RANK_INDEX}"))
        conn.execute(sa.text(f"CREATE INDEX {SQLITE_RANK_INDEX} ON step_visits "
                             "(org, step, seconds, left_at, sop_revision, outcome, item_id, "
                             "entered_at, left_by)"))


#: The ordered schema migrations: (version, name, function).
MIGRATIONS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial schema", _initial),
    (2, "indexes for overdue and assignee lists", _list_indexes),
    (3, "content digest of items, checked by posting claims", _content_digest),
    (4, "credential expiry times", _credential_expiries),
    (5, "store uuid, item keys, active actors and channels", _identity_and_activity),
    (6, "media store: import media recorded by path", _media_store),
    (7, "row digests: a baseline of existing rows", _row_digest_baseline),
    (8, "processed mail replies and used approval tokens", _mail_replies),
    (9, "corrective actions (SOP step 10)", _corrective_actions),
    (10, "mail queue, and the language of each actor's mail", _mail_queue),
    (11, "credential expiry warnings given", _credential_warnings),
    (12, "step visits for the evaluation report", _step_visits),
    (13, "the report's breaches from the SQLite index of step visits", _covering_rank_index),
]
