"""No double posts: faults at every call of a multi-step post, on SQLite and PostgreSQL.

Rule (DESIGN.md §3, PLATFORMS.md "Duplicates and retries"): whatever stops a posting
run — a crash before a request, after the platform carried it out, after its answer
but before anything was written, a timeout — a restarted worker ends with each channel's
post on the platform exactly once and recorded with the platform's id, or with an
explicit ``unknown`` that a person confirms. Never two posts; never a post the record
does not know about.

The platform is :class:`~humasflow.testing.FakePlatform`, a real HTTP server on
127.0.0.1 that (like X) has no duplicate guard, so any blind re-post shows. In-process
crashes raise :class:`~humasflow.testing.Crash` (a BaseException nothing catches);
the ``real kill`` tests run the posting in a child process and SIGKILL it.
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

import humasflow
from humasflow import Office
from humasflow.errors import Refused
from humasflow.publishing.dispatch import ManualHeartbeat, PostReport
from humasflow.storage.store import Store
from humasflow.testing import (
    Crash,
    FakePlatform,
    FakePlatformPlugin,
    FaultInjector,
    SteerableClock,
    item_ready_to_post,
    plugin_registered,
    staffed_office,
)
from humasflow.testing.faults import CALL_POINTS, resume_after_restart

TOKENS = {"fisip": "tok-fisip-9d1e42", "ub": "tok-ub-3c7a58"}
ENVIRON = {"FISIP_TOKEN": TOKENS["fisip"], "UB_TOKEN": TOKENS["ub"]}
TEXT = "Selamat Dies Natalis ke-44 FISIP Universitas Brawijaya!"
MEDIA = ["https://media.fisip.example/dies-natalis.png"]
#: The calls of one post, by the path that reaches the platform.
CALL_PATHS = {1: "/media", 2: "/containers", 3: "/publish"}


@pytest.fixture(autouse=True)
def _fake_platform_publishers() -> Iterator[None]:
    with plugin_registered(FakePlatformPlugin()):
        yield


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    with FakePlatform(TOKENS) as fake:
        yield fake


@attrs.define
class World:
    """A store with an office, two channels on the fake platform, and a clock."""

    platform: FakePlatform
    store_url: str
    clock: SteerableClock
    injector: FaultInjector
    office: Office

    def make_office(self) -> Office:
        return Office(Store(self.store_url), clock=self.clock, environ=ENVIRON,
                      session_factory=self.injector.session)

    def status(self, item_id: int) -> PostReport:
        office = self.make_office()
        try:
            return office.status(item_id)
        finally:
            office._store.close()

    def confirm(self, item_id: int, channel: str, **answer) -> PostReport:
        office = self.make_office()
        try:
            return office.confirm(item_id, channel, by="rina", **answer)
        finally:
            office._store.close()

    def publish_calls(self, account: str) -> int:
        return sum(1 for r in self.platform.calls(f"/accounts/{account}/")
                   if r.path.endswith("/publish"))


def _world(platform: FakePlatform, store_url: str, publisher: str,
           channels: tuple[str, ...] = ("fisip", "ub"),
           clock: SteerableClock | None = None) -> World:
    clock = clock or SteerableClock()
    injector = FaultInjector()
    store = injector.watch(Store(store_url))
    office = Office(store, clock=clock, environ=ENVIRON, session_factory=injector.session)
    office.establish(by="Dekan")
    staffed_office(office)
    for account in channels:
        office.add_channel(account, publisher,
                           settings={"base_url": platform.url, "account": account,
                                     "media_urls": "pass"},
                           credentials={"token": f"{account.upper()}_TOKEN"}, by="admin")
    return World(platform, store_url, clock, injector, office)


@pytest.fixture
def world(platform, store_url, request) -> Iterator[World]:
    w = _world(platform, store_url, getattr(request, "param", "fake-platform"))
    yield w
    w.office._store.close()


def _assert_one_post_each(world: World, item_id: int, accounts=("fisip", "ub")) -> None:
    report = world.status(item_id)
    assert report.done, f"the item is not closed: {report.publications}"
    for account in accounts:
        posts = world.platform.posts(account)
        assert len(posts) == 1, f"{account}: expected one post, found {posts}"
        pub = report.publications[account]
        assert pub.platform_id == posts[0]["id"], f"{account}: recorded {pub}, posted {posts}"
    office = world.make_office()
    try:
        assert office.verify().ok
    finally:
        office._store.close()


def _person_settles(world: World, item_id: int) -> None:
    """What the PR staff does for each channel the record says nobody can tell."""
    report = world.status(item_id)
    for channel, pub in report.publications.items():
        if pub.state == "posted":
            continue
        assert pub.state == "unknown", f"{channel} is {pub.state}: {pub.error_message}"
        assert channel in report.needs_person
        posts = world.platform.posts(channel)
        if posts:
            world.confirm(item_id, channel, url=posts[0]["url"], platform_id=posts[0]["id"])
        else:
            world.confirm(item_id, channel, not_posted=True)


MATRIX = [(point, call) for call in CALL_PATHS for point in CALL_POINTS]
MATRIX.append(("crash_before_outcome", 0))


@pytest.mark.parametrize("world", ["fake-platform", "fake-platform-nolookup"],
                         indirect=True)
@pytest.mark.parametrize(("point", "call"), MATRIX,
                         ids=[f"{p}@{c}" if c else p for p, c in MATRIX])
def test_a_fault_at_any_call_never_posts_twice(world, point, call):
    """One channel hit at each call; the other channel, posted alongside, is never
    posted again."""
    item = item_ready_to_post(world.office, text=TEXT, media=MEDIA)
    world.injector.arm(point, call, match="/accounts/fisip/")
    with pytest.raises(Crash) if point.startswith("crash") else contextlib.nullcontext():
        world.office.post(item.id, by="rina")
    assert world.injector.fired
    for account in TOKENS:
        assert len(world.platform.posts(account)) <= 1

    resume_after_restart(world.make_office, world.clock)

    for account in TOKENS:
        assert len(world.platform.posts(account)) <= 1
    has_lookup = world.office.channels()["fisip"].publisher == "fake-platform"
    if has_lookup:
        # Every fault here can be settled by looking on the platform: no person needed.
        assert world.status(item.id).needs_person == []
    else:
        _person_settles(world, item.id)
    _assert_one_post_each(world, item.id)
    if has_lookup:
        # Not even a refused second attempt: the platform saw one publish per account.
        assert world.publish_calls("fisip") == world.publish_calls("ub") == 1


@pytest.mark.parametrize("world", ["fake-platform", "fake-platform-nolookup"],
                         indirect=True)
@pytest.mark.parametrize("call", sorted(CALL_PATHS))
def test_a_server_error_after_the_work_is_done_is_retried_safely(world, call):
    """A 500 from a server that carried the request out anyway (PLATFORMS.md: one tool
    retries creates on 500 and double-posts)."""
    item = item_ready_to_post(world.office, text=TEXT, media=MEDIA)
    world.platform.fail_next("server_error", path=f"/accounts/fisip/(.*/)?{CALL_PATHS[call][1:]}",
                             applied=True)
    report = world.office.post(item.id, by="rina")
    assert report.publications["fisip"].state == "failed"
    assert report.publications["fisip"].next_attempt_at is not None
    assert report.publications["ub"].state == "posted"
    resume_after_restart(world.make_office, world.clock)
    _assert_one_post_each(world, item.id)
    assert world.publish_calls("ub") == 1


@pytest.mark.parametrize("world", ["fake-platform-nolookup"], indirect=True)
def test_without_lookup_unknown_stays_unknown_until_a_person_says_not_posted(world):
    item = item_ready_to_post(world.office, text=TEXT, media=MEDIA)
    world.injector.arm("crash_before_send", 3, match="/accounts/fisip/")
    with pytest.raises(Crash):
        world.office.post(item.id, by="rina")
    for _ in range(3):
        resume_after_restart(world.make_office, world.clock)
        report = world.status(item.id)
        assert report.publications["fisip"].state == "unknown"
        assert report.needs_person == ["fisip"]
        assert report.publications["ub"].state == "posted"
        assert world.platform.posts("fisip") == []
        assert world.publish_calls("fisip") == 0

    report = world.confirm(item.id, "fisip", not_posted=True)

    assert report.done
    assert len(world.platform.posts("fisip")) == 1
    assert world.publish_calls("fisip") == 1
    with pytest.raises(Refused, match="posted"):
        world.confirm(item.id, "fisip", not_posted=True)
    resume_after_restart(world.make_office, world.clock)
    _assert_one_post_each(world, item.id)


@pytest.mark.parametrize("world", ["fake-platform-nolookup"], indirect=True)
def test_without_lookup_a_person_confirms_the_post_they_find(world):
    item = item_ready_to_post(world.office, text=TEXT, media=MEDIA)
    world.injector.arm("timeout_after_send", 3, match="/accounts/fisip/")
    report = world.office.post(item.id, by="rina")
    assert report.publications["fisip"].state == "unknown"
    resume_after_restart(world.make_office, world.clock)
    assert world.status(item.id).publications["fisip"].state == "unknown"
    [post] = world.platform.posts("fisip")

    world.confirm(item.id, "fisip", url=post["url"], platform_id=post["id"])

    _assert_one_post_each(world, item.id)
    assert world.status(item.id).publications["fisip"].url == post["url"]


def test_not_posted_starts_afresh_whatever_the_last_attempt_saved(platform, store_url):
    """A person's "not posted" outweighs the ids an earlier attempt saved: the post that
    attempt made was taken down, so the next attempt makes a new one instead of
    returning the old receipt (the record would say posted, with nothing on the
    platform)."""
    world = _world(platform, store_url, "fake-platform-nolookup", channels=("fisip",))
    try:
        item = item_ready_to_post(world.office, text=TEXT, media=MEDIA)
        world.injector.arm("crash_before_outcome")
        with pytest.raises(Crash):
            world.office.post(item.id, by="rina")
        [taken_down] = platform.posts("fisip")
        platform.delete_post(taken_down["id"])  # e.g. a typo: taken down at once
        resume_after_restart(world.make_office, world.clock)
        assert world.status(item.id).publications["fisip"].state == "unknown"

        world.confirm(item.id, "fisip", not_posted=True)

        _assert_one_post_each(world, item.id, accounts=("fisip",))
        assert platform.posts("fisip")[0]["id"] != taken_down["id"]
    finally:
        world.office._store.close()


def test_a_post_deleted_on_the_platform_is_not_posted_again_by_itself(platform, store_url):
    """The record knows the post was made; its disappearance is a person's call."""
    world = _world(platform, store_url, "fake-platform", channels=("fisip",))
    try:
        item = item_ready_to_post(world.office, text=TEXT, media=MEDIA)
        world.injector.arm("crash_before_outcome")
        with pytest.raises(Crash):
            world.office.post(item.id, by="rina")
        [post] = platform.posts("fisip")
        platform.delete_post(post["id"])
        resume_after_restart(world.make_office, world.clock)
        report = world.status(item.id)
        assert report.publications["fisip"].state == "unknown"
        assert world.publish_calls("fisip") == 1
    finally:
        world.office._store.close()


LEASE = dt.timedelta(minutes=15)


class BeatingClock(SteerableClock):
    """A steered clock along which a heartbeat beats every third of the lease, as the
    dispatcher's real heartbeat does while real time passes."""

    def __init__(self, heartbeat: ManualHeartbeat) -> None:
        super().__init__()
        self.heartbeat = heartbeat

    def advance(self, delta: dt.timedelta | None = None, **kwargs: float) -> dt.datetime:
        left = delta if delta is not None else dt.timedelta(**kwargs)
        while left > dt.timedelta(0):
            step = min(left, LEASE / 3)
            super().advance(step)
            left -= step
            self.heartbeat.beat()
        return self()


def _slow_post(world: World, item_id: int, call: int, heartbeat: ManualHeartbeat,
               worker: str = "slow") -> tuple[threading.Thread, threading.Event,
                                              list[BaseException]]:
    """Start posting in a thread that stalls just before its ``call``-th request."""
    paused, go_on = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def slow_network() -> None:
        paused.set()
        go_on.wait(30)

    def post() -> None:
        try:
            world.office.dispatcher(worker_id=worker, heartbeat=heartbeat).post(
                item_id, world.office.actor("rina"))
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    world.injector.before_call(call, slow_network)
    slow = threading.Thread(target=post)
    slow.start()
    assert paused.wait(30)
    return slow, go_on, errors


def test_a_worker_slower_than_its_lease_does_not_post_twice(platform, store_url):
    """The heartbeat renews the lease while publish() runs, so a restarted worker finds
    the channel still in flight and leaves it alone."""
    heartbeat = ManualHeartbeat()
    world = _world(platform, store_url, "fake-platform", channels=("fisip",),
                   clock=BeatingClock(heartbeat))
    go_on = threading.Event()
    try:
        item = item_ready_to_post(world.office, text=TEXT, media=MEDIA)
        # It stalls just before the publish call.
        slow, go_on, errors = _slow_post(world, item.id, 3, heartbeat)
        # Meanwhile more than a lease's time passes, and another worker runs.
        resume_after_restart(world.make_office, world.clock, rounds=1)
        go_on.set()
        slow.join(30)
        assert len(platform.posts("fisip")) == 1
        assert errors == []
        assert heartbeat.running == 0  # the attempt's heartbeat ended with it
        _assert_one_post_each(world, item.id, accounts=("fisip",))
        assert world.publish_calls("fisip") == 1
    finally:
        go_on.set()
        world.office._store.close()


def test_a_worker_that_lost_its_claim_stops_before_its_next_call(platform, store_url):
    """A worker frozen longer than its lease (no heartbeat got through) finds, at its next
    ``progress.save``, that its channel was taken over: it makes no further call and
    records nothing over the new owner's record."""
    world = _world(platform, store_url, "fake-platform", channels=("fisip",))
    go_on = threading.Event()
    try:
        item = item_ready_to_post(world.office, text=TEXT, media=MEDIA)
        # Frozen after uploading the poster, just before creating the container.
        slow, go_on, errors = _slow_post(world, item.id, 2, ManualHeartbeat())
        resume_after_restart(world.make_office, world.clock, rounds=1)
        taken_over = world.status(item.id).publications["fisip"]
        assert (taken_over.state, taken_over.attempts) == ("posted", 2)
        go_on.set()  # it wakes up: its container call goes out, then it must stop
        slow.join(30)
        assert errors == []
        assert len(platform.posts("fisip")) == 1
        assert world.publish_calls("fisip") == 1
        assert len(platform.calls("/accounts/fisip/containers")) == 3  # 2 creates, 1 publish
        assert world.status(item.id).publications["fisip"] == taken_over
        office = world.make_office()
        try:
            workers = {e.data.get("worker") for e in office.history(item.id)
                       if e.action.startswith("channel_")}
            assert workers == {"restarted-1"}  # the frozen worker recorded nothing
        finally:
            office._store.close()
        _assert_one_post_each(world, item.id, accounts=("fisip",))
    finally:
        go_on.set()
        world.office._store.close()


def test_nothing_in_humasflow_swallows_a_crash():
    """Crash (a BaseException) stands for a kill only if no handler outside the test
    helpers catches a BaseException without raising it again."""
    root = Path(humasflow.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if "testing" in path.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if not isinstance(node, ast.ExceptHandler):
                continue
            catches_all = node.type is None or (
                isinstance(node.type, ast.Name) and node.type.id == "BaseException")
            reraises = any(isinstance(n, ast.Raise) and n.exc is None for n in node.body)
            if catches_all and not reraises:
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []


# -- real process kills -------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import datetime as dt, json, os, signal, sys

    from humasflow import Office
    from humasflow.storage.store import Store
    from humasflow.testing import FakePlatformPlugin, FaultInjector, SteerableClock
    from humasflow.testing import plugin_registered

    config = json.loads(sys.argv[1])

    def die(why):
        os.kill(os.getpid(), signal.SIGKILL)

    injector = FaultInjector(crash=die)
    store = injector.watch(Store(config["store_url"]))
    if config["point"]:
        injector.arm(config["point"], config["call"])
    office = Office(store, clock=SteerableClock(dt.datetime.fromisoformat(config["now"])),
                    environ=config["environ"], session_factory=injector.session)
    with plugin_registered(FakePlatformPlugin()):
        sys.stdin.readline()  # wait until the test has set its trap
        office.post(config["item"], by="rina")
    print("posted without being killed")
""")

KILLS = [("server", 1), ("server", 2), ("server", 3),
         ("crash_before_save", 1), ("crash_before_save", 2), ("crash_before_outcome", 0)]


@pytest.mark.slow
@pytest.mark.parametrize(("killer", "call"), KILLS,
                         ids=[f"{k}@{c}" if c else k for k, c in KILLS])
def test_a_killed_worker_never_posts_twice(platform, store_url, tmp_path, killer, call):
    """The worker is a real process, SIGKILLed by the platform after it carried out a
    request (before answering), or by itself after an answer, before writing it down."""
    world = _world(platform, store_url, "fake-platform", channels=("fisip",))
    item = item_ready_to_post(world.office, text=TEXT, media=MEDIA)
    world.office._store.close()
    script = tmp_path / "worker.py"
    script.write_text(CHILD, "utf-8")
    config = {"store_url": store_url, "item": item.id, "now": world.clock().isoformat(),
              "environ": ENVIRON, "point": "" if killer == "server" else killer,
              "call": call}
    child = subprocess.Popen([sys.executable, str(script), json.dumps(config)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        if killer == "server":
            platform.on_applied(lambda request: os.kill(child.pid, signal.SIGKILL),
                                path=CALL_PATHS[call])
        out, err = child.communicate(b"go\n", timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL, (
        f"the worker was not killed (exit {child.returncode}): {out!r} {err.decode()}")
    made = killer == "crash_before_outcome" or (killer == "server" and call == 3)
    assert len(platform.posts("fisip")) == (1 if made else 0)

    resume_after_restart(world.make_office, world.clock)

    _assert_one_post_each(world, item.id, accounts=("fisip",))
    assert world.status(item.id).needs_person == []
    assert world.publish_calls("fisip") == 1


def test_the_real_kill_worker_really_posts_when_left_alone(platform, store_url, tmp_path):
    """The control for the kill tests: the same child, without a trap, posts once."""
    world = _world(platform, store_url, "fake-platform", channels=("fisip",))
    item = item_ready_to_post(world.office, text=TEXT, media=MEDIA)
    world.office._store.close()
    script = tmp_path / "worker.py"
    script.write_text(CHILD, "utf-8")
    config = {"store_url": store_url, "item": item.id, "now": world.clock().isoformat(),
              "environ": ENVIRON, "point": "", "call": 0}
    done = subprocess.run([sys.executable, str(script), json.dumps(config)], input=b"go\n",
                          capture_output=True, timeout=120, cwd=tmp_path, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert b"posted without being killed" in done.stdout
    _assert_one_post_each(world, item.id, accounts=("fisip",))


# -- the conformance suite catches a publisher that double-posts --------------------------

BLIND = textwrap.dedent('''
    import pytest
    from humasflow.errors import PlatformError
    from humasflow.hookspecs import hookimpl
    from humasflow.models import Media
    from humasflow.publishing.contract import Post
    from humasflow.testing import FakePlatform
    from humasflow.testing.conformance import PublisherConformance
    from humasflow.testing.faults import MemoryProgress
    from humasflow.testing.platform import StepPublisher


    class BlindPublisher(StepPublisher):
        """Starts over on every attempt and calls a lost answer a server error."""

        def publish(self, post, progress):
            try:
                return super().publish(post, MemoryProgress())
            except Exception as exc:
                raise PlatformError(str(exc), channel=self.channel) from None

        reconcile = None


    class Plugin:
        @hookimpl
        def register_publishers(self, register):
            register("blind", BlindPublisher)


    class TestBlindConformance(PublisherConformance):
        publisher = "blind"
        plugin = Plugin()
        credentials = {"token": "BLIND_TOKEN"}
        environ = {"BLIND_TOKEN": "tok-blind-123456"}
        calls_per_post = 3

        @pytest.fixture
        def wire(self):
            with FakePlatform({"fisip": "tok-blind-123456"}) as platform:
                yield platform

        def channel_settings(self, wire):
            return {"base_url": wire.url, "account": "fisip"}

        def invalid_post(self, image):
            return Post(item_id=0, channel="", title="t", text="x" * 501)
''')


@pytest.mark.slow
def test_the_conformance_suite_catches_a_publisher_that_retries_blindly(tmp_path):
    (tmp_path / "test_blind.py").write_text(BLIND, "utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir",
         str(tmp_path), "-c", os.devnull, "test_blind.py", "-k",
         "no_double_post or timeout"],
        capture_output=True, timeout=300, cwd=tmp_path, check=False)
    out = done.stdout.decode()
    assert done.returncode == 1, out
    assert "double post" in out
    assert "test_timeout_is_an_unknown_outcome FAILED" in out or re.search(
        r"FAILED .*test_timeout_is_an_unknown_outcome", out), out
    assert "test_no_double_post[timeout_after_send@3] FAILED" in out or re.search(
        r"FAILED .*test_no_double_post\[timeout_after_send@3\]", out), out
