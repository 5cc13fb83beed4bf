"""Shared fixtures.

PostgreSQL tests use the server named by ``HUMASFLOW_TEST_POSTGRES`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``). Outside CI they are skipped,
with the reason shown, when no server answers; with ``CI=true`` an unreachable server
fails them instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from humasflow import MediaStore, Office, hookimpl
from humasflow.storage import Store
from humasflow.testing import SteerableClock, plugin_registered, sample_image, staffed_office

PG_URL = os.environ.get(
    "HUMASFLOW_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No test sees the developer's humasflow settings or plugin selection, and each runs
    in its own working directory (the folder media may be attached from by default)."""
    for name in list(os.environ):
        if name.startswith("HUMASFLOW_") and name != "HUMASFLOW_TEST_POSTGRES":
            monkeypatch.delenv(name)
    for name in ("NO_COLOR", "LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(name, raising=False)
    # The developer's own ~/.config/humasflow/config.toml stays out of the tests.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.chdir(tmp_path)


class _SharedMediaOnPostgres:
    """What a deployment on PostgreSQL configures once (here through the ``media_store``
    hook): one media store for every office and command of the test, so secondary
    offices and CLI runs on the same database find the same bytes."""

    def __init__(self, root) -> None:
        self.store = MediaStore(root)

    @hookimpl
    def media_store(self, office):
        return self.store if office.location.startswith("postgresql") else None


@pytest.fixture(autouse=True)
def _media_on_postgres(request: pytest.FixtureRequest, tmp_path) -> Iterator[None]:
    """PostgreSQL has no file to keep media beside; tests marked ``bare_media`` check
    what happens when nothing supplies a media store."""
    if request.node.get_closest_marker("bare_media"):
        yield
        return
    with plugin_registered(_SharedMediaOnPostgres(tmp_path / "pg-media")):
        yield


def _pg_reachable() -> str | None:
    try:
        engine = sa.create_engine(PG_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The URL of a fresh PostgreSQL schema for this test session."""
    problem = _pg_reachable()
    if problem is not None:
        if IN_CI:
            pytest.fail(f"CI=true but PostgreSQL at {PG_URL} is not reachable: {problem}")
        pytest.skip(f"PostgreSQL at {PG_URL} is not reachable: {problem}")
    schema = f"hf_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        # Per-test schemas a test's own connections still held at its end (see store_url).
        for left in sorted(_LEFT_SCHEMAS):
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {left} CASCADE"))
    _LEFT_SCHEMAS.clear()
    engine.dispose()


def _fresh_pg(pg_url: str) -> str:
    """A fresh schema per test, so tests do not see each other's rows."""
    base = pg_url.split("?")[0]
    schema = f"hf_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    return f"{base}?options=-csearch_path%3D{schema}"


#: Schemas whose drop at the end of their test had to wait (dropped at the session's end).
_LEFT_SCHEMAS: set[str] = set()


def _drop_pg(url: str) -> None:
    """Drop a schema made by :func:`_fresh_pg`; if a connection the test left open still
    holds it, leave it to the session's end instead of waiting."""
    base, _, options = url.partition("?")
    schema = options.rsplit("%3D", 1)[-1]
    engine = sa.create_engine(base)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SET LOCAL lock_timeout = '3s'"))
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    except sa.exc.OperationalError:
        _LEFT_SCHEMAS.add(schema)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh store URL: a SQLite file, and a PostgreSQL schema (dropped afterwards)."""
    if request.param == "sqlite":
        yield str(tmp_path / "humasflow.db")
        return
    url = _fresh_pg(request.getfixturevalue("pg_url"))
    yield url
    _drop_pg(url)


@pytest.fixture
def clock() -> SteerableClock:
    return SteerableClock()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    yield s
    s.close()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    """A store on a fresh PostgreSQL schema only (dropped afterwards)."""
    url = _fresh_pg(pg_url)
    s = Store(url)
    yield s
    s.close()
    _drop_pg(url)


@pytest.fixture
def office(store: Store, clock: SteerableClock, tmp_path) -> Office:
    """An office on each database, with the bundled SOP, three actors and an outbox channel."""
    # SQLite keeps media beside the file (where the CLI finds them too); PostgreSQL needs
    # a media store configured.
    media = tmp_path / "media-store" if store.is_postgres else None
    o = Office(store, clock=clock, environ={}, media_store=media)
    o.establish(by="Dekan")
    staffed_office(o)
    o.add_channel("outbox", "outbox", settings={"path": str(tmp_path / "outbox")}, by="admin")
    return o


@pytest.fixture
def image(tmp_path):
    """A small local image file (a valid 8x6 PNG)."""
    return sample_image(tmp_path / "poster.png")


@pytest.fixture
def images(tmp_path):
    """Makes small distinct PNG files by name: ``images("a.png")``."""
    counter = iter(range(1, 250))

    def make(name="poster.png", **kwargs):
        kwargs.setdefault("colour", (next(counter), 51, 102))
        return sample_image(tmp_path / name, **kwargs)
    return make
