"""The conformance suite: the tests every publisher distribution runs.

Subclass :class:`PublisherConformance` in a test module of your plugin (its name must
start with ``Test``), say what your publisher needs, and supply a *wire fake*: the fake
platform your tests already use (``responses`` callbacks, or a local server), wrapped
in the small :class:`WireFake` protocol. pytest then runs every check below against
your publisher, through the real dispatcher and a real SQLite store::

    class TestExampleConformance(PublisherConformance):
        publisher = "example"
        credentials = {"token": "EXAMPLE_TOKEN"}
        environ = {"EXAMPLE_TOKEN": "tok-good"}
        bad_environ = {"EXAMPLE_TOKEN": "tok-revoked"}
        calls_per_post = 1
        invalid_problems = {("text", "max_length")}

        @pytest.fixture
        def wire(self):
            with ExampleWire() as wire:
                yield wire

        def channel_settings(self, wire):
            return {"account": "fisip"}

        def invalid_post(self, image):
            return Post(item_id=0, channel="", title="t", text="x" * 1000)

The checks (names for :attr:`PublisherConformance.not_applicable`):

``validate``
    ``validate`` returns ``[]`` for the valid post and :class:`Problem` objects naming
    the channel, field and rule for the invalid one, without any network call; the SOP
    refuses the invalid post before it reaches the posting step.
``publish``
    ``publish`` returns a :class:`Receipt` with the platform's id and a URL, the post is
    on the wire fake once, and the dispatcher records it; a clean post makes exactly
    :attr:`~PublisherConformance.calls_per_post` HTTP requests.
``authentication``
    A 401 raises :class:`AuthenticationFailed`; the dispatcher does not retry it.
``rate_limit``
    A 429 raises :class:`RateLimited` whose ``reset_at`` is the platform's reset time;
    the dispatcher waits until then, and posts once.
``server_error``
    A 5xx raises :class:`PlatformError`; the dispatcher retries it later (backoff), once.
``server_error_after_send``
    The platform carries out a request but answers 5xx (at every call of a post): in
    the end there is exactly one post. Needs ``fail_next(..., applied=True)``.
``timeout``
    A read timeout on the call that makes the post public raises
    :class:`OutcomeUnknown`; no raw ``requests`` exception escapes at any call.
``check``
    ``check()`` passes with good credentials (returning ``None`` or a one-line
    summary) and posts nothing.
``check_bad_credentials``
    ``check()`` raises :class:`AuthenticationFailed` with :attr:`bad_environ`.
``secrets``
    No credential value appears in any error's ``str``/``repr`` (causes included), in
    the publisher's ``repr``, or in the office's records.
``no_double_post``
    The fault matrix, through the dispatcher: at every call of a post, a crash before
    the request, a crash after it reached the platform, a crash after the answer before
    anything is saved, a timeout before and after the request; and a crash after
    ``publish`` returned, before the outcome is recorded. After each, a restarted worker
    (new dispatcher, clock moved past the lease) resumes; every case must end with the
    post on the platform exactly once, either by itself or after a person confirms an
    ``unknown`` channel. Never twice.

A check that cannot apply to a publisher is named in ``not_applicable`` with the reason;
it is then reported as skipped with that reason, never as passed.

Timeouts and crashes are injected in the HTTP session the publisher gets from
:attr:`PublisherContext.session <humasflow.publishing.contract.PublisherContext.session>`
(see :class:`~humasflow.testing.faults.FaultInjector`), so the wire fake needs only to
list posts, fail a request with a platform-shaped error, and count requests.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from collections.abc import Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs
import pytest
import requests

from humasflow import plugins
from humasflow.errors import (
    AuthenticationFailed,
    ContentInvalid,
    HumasflowError,
    OutcomeUnknown,
    PlatformError,
    PublishError,
    RateLimited,
    Refused,
)
from humasflow.models import ContentItem, Media
from humasflow.office import Office, PostReport
from humasflow.publishing.contract import Post, Problem, Receipt
from humasflow.publishing.retry import RetryPolicy
from humasflow.storage.store import Store
from humasflow.testing import (
    SteerableClock,
    item_ready_to_post,
    plugin_registered,
    sample_image,
    staffed_office,
)
from humasflow.testing.faults import (
    CALL_POINTS,
    Crash,
    FaultInjector,
    MemoryProgress,
    resume_after_restart,
)

__all__ = ["CHECKS", "Harness", "PublisherConformance", "WireFake"]

#: Every check of the suite, by the name used in ``not_applicable``.
CHECKS: tuple[str, ...] = (
    "validate",
    "publish",
    "authentication",
    "rate_limit",
    "server_error",
    "server_error_after_send",
    "timeout",
    "check",
    "check_bad_credentials",
    "secrets",
    "no_double_post",
)

_CHANNEL = "conformance"


@runtime_checkable
class WireFake(Protocol):
    """What the suite needs from a plugin's fake platform (fresh for every test)."""

    def posts(self) -> Sequence[Mapping[str, Any]]:
        """The public posts on the fake, oldest first; each has the ``id`` that
        ``publish`` returns as ``Receipt.platform_id`` (and a ``url`` if the platform
        has one)."""

    def fail_next(self, kind: str, *, reset_at: dt.datetime | None = None,
                  applied: bool = False) -> None:
        """Answer the next request as the platform does for ``kind``: ``unauthorized``
        (401), ``rate_limited`` (429, reset header set to ``reset_at``) or
        ``server_error`` (5xx). With ``applied``, carry the request out first."""

    def count_calls(self) -> int:
        """How many requests the fake has received."""


@attrs.define
class Harness:
    """One test's office, clock, store, fault injector and wire fake."""

    suite: PublisherConformance
    wire: Any
    store_url: str
    image: str
    clock: SteerableClock
    injector: FaultInjector
    office: Office
    media_store: Any = None
    channel: str = _CHANNEL

    def make_office(self, environ: Mapping[str, str] | None = None) -> Office:
        """A new office on the same store, as a restarted process opens it."""
        env = dict(self.suite.environ if environ is None else environ)
        return Office(Store(self.store_url), clock=self.clock, environ=env,
                      session_factory=self.injector.session, media_store=self.media_store,
                      media_roots=[Path(self.image).parent])

    def publisher(self, environ: Mapping[str, str] | None = None) -> Any:
        """The channel's publisher, made the way the dispatcher makes it."""
        office = self.office if environ is None else self.make_office(environ)
        try:
            return office.publisher(self.channel)
        finally:
            if office is not self.office:
                office.close()

    def post(self, kind: str = "valid") -> Post:
        """The suite's valid (or invalid) post, addressed to the channel."""
        make = self.suite.valid_post if kind == "valid" else self.suite.invalid_post
        post = make(self.image)
        # As the office hands it over: its media in the media store (an invalid post's
        # media that cannot be stored are handed over as they are).
        media = tuple(post.media)
        with contextlib.suppress(ContentInvalid):
            media = self.office.add_media(media, channels=[self.channel]) if media else ()
        return attrs.evolve(post, item_id=9001, channel=self.channel, media=media)

    def ready_item(self) -> ContentItem:
        """A content item with the valid post, at the posting step."""
        post = self.post()
        return item_ready_to_post(self.office, text=post.text, media=post.media,
                                  link=post.link, channels=[self.channel])

    def post_item(self, item_id: int) -> PostReport | None:
        """``Office.post``; ``None`` if the (injected) process died."""
        try:
            return self.office.post(item_id, by="rina")
        except Crash:
            return None

    def status(self, item_id: int) -> PostReport:
        """The item's record, read through a fresh office."""
        office = self.make_office()
        try:
            return office.status(item_id)
        finally:
            office.close()

    def resume(self) -> None:
        """A restarted worker runs what is due until nothing changes any more."""
        resume_after_restart(self.make_office, self.clock, lease=self.suite.lease)

    def posts(self) -> list[Mapping[str, Any]]:
        """The wire fake's posts."""
        return list(self.wire.posts())

    def settle(self, item_id: int) -> PostReport:
        """Resume after a fault; if a person must decide, decide as they would by
        looking at the platform. Asserts there is never more than one post."""
        self._at_most_one("after the fault")
        self.resume()
        self._at_most_one("after a restarted worker resumed")
        report = self.status(item_id)
        pub = report.publications[self.channel]
        if pub.state != "posted":
            assert pub.state in ("unknown", "waiting"), (
                f"after the fault and a restart the channel is {pub.state!r} "
                f"({pub.error_class}: {pub.error_message}); expected posted, or unknown for "
                "a person to confirm")
            posts = self.posts()
            office = self.make_office()
            try:
                if posts:
                    office.confirm(item_id, self.channel, by="rina",
                                   platform_id=str(posts[0]["id"]),
                                   url=str(posts[0].get("url") or posts[0]["id"]))
                else:
                    office.confirm(item_id, self.channel, by="rina", not_posted=True)
            finally:
                office.close()
            report = self.status(item_id)
        posts = self.posts()
        assert len(posts) == 1, f"expected exactly one post on the platform, found {posts}"
        assert report.done, f"the item is not closed: {report.publications}"
        recorded = report.publications[self.channel].platform_id
        assert recorded == str(posts[0]["id"]), (
            f"the record says {recorded!r} but the platform's post is {posts[0]['id']!r}")
        return report

    def _at_most_one(self, when: str) -> None:
        posts = self.posts()
        assert len(posts) <= 1, f"double post {when}: {posts}"


class PublisherConformance:
    """Base class of a plugin's conformance tests. Set the attributes, provide the
    ``wire`` fixture (a :class:`WireFake`, fresh for each test), override
    :meth:`invalid_post` and, if needed, :meth:`channel_settings` and :meth:`valid_post`.

    Attributes:
        publisher: The name the publisher is registered under.
        plugin: A plugin object (module or instance) to register for each test, if the
            distribution is not installed (its entry point then registers it).
        credentials: Credential name → environment variable, as a channel names them.
        environ: Environment variables with good (fake) credential values.
        bad_environ: The same variables with values the wire fake refuses.
        calls_per_post: HTTP requests a clean post of :meth:`valid_post` makes.
        invalid_problems: ``(field, rule)`` pairs :meth:`invalid_post` must produce.
        not_applicable: Check name → why it does not apply to this publisher.
        lease: The dispatcher's lease (how long an attempt may run).
    """

    publisher: ClassVar[str] = ""
    plugin: ClassVar[object | None] = None
    credentials: ClassVar[Mapping[str, str]] = {}
    environ: ClassVar[Mapping[str, str]] = {}
    bad_environ: ClassVar[Mapping[str, str]] = {}
    calls_per_post: ClassVar[int] = 1
    invalid_problems: ClassVar[Collection[tuple[str, str]]] = ()
    not_applicable: ClassVar[Mapping[str, str]] = {}
    lease: ClassVar[dt.timedelta] = dt.timedelta(minutes=15)

    # -- what a plugin supplies ---------------------------------------------------------------

    # The subclass (or its module or conftest) provides the fixture ``wire``: a
    # :class:`WireFake`, fresh for each test.

    def channel_settings(self, wire: Any) -> Mapping[str, Any]:
        """The channel's settings, e.g. the wire fake's URL."""
        return {}

    def valid_post(self, image: str) -> Post:
        """A post the platform accepts, with at least one media file (the SOP posts a
        design); ``image`` is a small PNG file."""
        return Post(item_id=0, channel="", title="Dies Natalis",
                    text="Selamat Dies Natalis ke-44 FISIP Universitas Brawijaya!",
                    media=(Media(image, alt="Poster Dies Natalis"),))

    def invalid_post(self, image: str) -> Post:
        """A post ``validate`` must refuse. Override it."""
        raise NotImplementedError(f"{type(self).__name__} must override invalid_post()")

    # -- fixtures -------------------------------------------------------------------------------

    @pytest.fixture
    def conformance_store_url(self, tmp_path: Path) -> str:
        """Where the store lives (override to use PostgreSQL as well)."""
        return str(tmp_path / "conformance.db")

    @pytest.fixture
    def harness(self, wire: Any, conformance_store_url: str,
                tmp_path: Path) -> Iterator[Harness]:
        """An office with the suite's cast and one channel on the publisher under test."""
        image = sample_image(tmp_path / "poster.png")
        media_store = tmp_path / "conformance-media"
        with contextlib.ExitStack() as stack:
            plugins.load_plugins()
            if self.plugin is not None and not plugins.pm.is_registered(self.plugin):
                stack.enter_context(plugin_registered(self.plugin))
            if self.publisher not in plugins.publisher_factories():
                pytest.fail(f"no publisher {self.publisher!r} is registered: install the "
                            "distribution (pip install -e .) or set `plugin`")
            clock = SteerableClock()
            injector = FaultInjector()
            store = injector.watch(Store(conformance_store_url))
            stack.callback(store.close)
            office = Office(store, clock=clock, environ=dict(self.environ),
                            session_factory=injector.session, media_store=media_store,
                            media_roots=[tmp_path])
            office.establish(by="Dekan")
            staffed_office(office)
            office.add_channel(_CHANNEL, self.publisher,
                               settings=dict(self.channel_settings(wire)),
                               credentials=dict(self.credentials), by="admin")
            yield Harness(suite=self, wire=wire, store_url=conformance_store_url,
                          image=str(image), clock=clock, injector=injector, office=office,
                          media_store=media_store)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize the fault matrix over every call of a post."""
        if "fault" not in metafunc.fixturenames:
            return
        cases = [(point, call) for call in range(1, self.calls_per_post + 1)
                 for point in (*CALL_POINTS, "server_error_after_send")]
        cases.append(("crash_before_outcome", 0))
        metafunc.parametrize("fault", cases,
                             ids=[f"{p}@{c}" if c else p for p, c in cases])

    def _applies(self, check: str) -> None:
        if check in self.not_applicable:
            pytest.skip(f"{check!r} does not apply to {self.publisher!r}: "
                        f"{self.not_applicable[check]}")

    # -- the checks -----------------------------------------------------------------------------

    def test_opt_outs_name_known_checks(self) -> None:
        """Every opt-out names a real check and says why."""
        unknown = sorted(set(self.not_applicable) - set(CHECKS))
        assert not unknown, f"not_applicable names unknown checks {unknown}; known: {CHECKS}"
        for check, reason in self.not_applicable.items():
            assert str(reason).strip(), f"say why {check!r} does not apply"
        assert self.publisher, "set `publisher` to the registered publisher name"

    def test_validate_accepts_the_valid_post(self, harness: Harness) -> None:
        self._applies("validate")
        publisher = harness.publisher()
        before = harness.wire.count_calls()
        with harness.injector.no_network():
            problems = publisher.validate(harness.post())
        assert problems == [], f"the valid post was refused: {problems}"
        self._assert_no_network(harness, before)

    def test_validate_reports_problems_for_the_invalid_post(self, harness: Harness) -> None:
        self._applies("validate")
        publisher = harness.publisher()
        before = harness.wire.count_calls()
        with harness.injector.no_network():
            problems = publisher.validate(harness.post("invalid"))
        self._assert_no_network(harness, before)
        assert problems, "validate() found nothing wrong with the invalid post"
        for problem in problems:
            assert isinstance(problem, Problem), f"{problem!r} is not a Problem"
            assert problem.channel == harness.channel, f"{problem!r}: wrong channel"
            for part in ("field", "rule", "message"):
                assert getattr(problem, part), f"{problem!r}: its {part} is empty"
        found = {(p.field, p.rule) for p in problems}
        missing = set(self.invalid_problems) - found
        assert not missing, f"expected problems {sorted(missing)}, found {sorted(found)}"
        invalid = harness.post("invalid")
        with pytest.raises(Refused):
            item_ready_to_post(harness.office, text=invalid.text, media=invalid.media,
                               link=invalid.link, channels=[harness.channel])
        assert harness.posts() == []

    def test_publish_returns_a_receipt(self, harness: Harness) -> None:
        self._applies("publish")
        receipt = harness.publisher().publish(harness.post(), MemoryProgress())
        assert isinstance(receipt, Receipt), f"publish() returned {receipt!r}"
        assert isinstance(receipt.platform_id, str), f"platform_id of {receipt!r}"
        assert receipt.platform_id, f"the receipt has no id: {receipt!r}"
        assert isinstance(receipt.url, str), f"url of {receipt!r}"
        assert "://" in receipt.url, f"the receipt has no URL: {receipt!r}"
        posts = harness.posts()
        assert len(posts) == 1, f"expected one post on the platform, found {posts}"
        assert str(posts[0]["id"]) == receipt.platform_id

    def test_dispatcher_records_the_post(self, harness: Harness) -> None:
        self._applies("publish")
        item = harness.ready_item()
        start = len(harness.injector.calls)
        report = harness.office.post(item.id, by="rina")
        pub = report.publications[harness.channel]
        assert report.done, f"not posted: {pub}"
        assert pub.state == "posted"
        assert pub.platform_id, f"no platform id recorded: {pub}"
        assert pub.url, f"no URL recorded: {pub}"
        posts = harness.posts()
        assert [str(p["id"]) for p in posts] == [pub.platform_id]
        made = len(harness.injector.calls) - start
        assert made == self.calls_per_post, (
            f"a clean post made {made} HTTP requests; calls_per_post says "
            f"{self.calls_per_post} (the fault matrix hits each of them)")

    def test_authentication_failure_is_not_retried(self, harness: Harness) -> None:
        self._applies("authentication")
        harness.wire.fail_next("unauthorized")
        with pytest.raises(AuthenticationFailed) as raised:
            harness.publisher().publish(harness.post(), MemoryProgress())
        assert raised.value.channel == harness.channel
        item = harness.ready_item()
        harness.wire.fail_next("unauthorized")
        report = harness.office.post(item.id, by="rina")
        pub = report.publications[harness.channel]
        assert (pub.state, pub.error_class) == ("failed", "AuthenticationFailed")
        assert pub.next_attempt_at is None, "a refused credential must not be retried"
        assert harness.channel in report.needs_person
        calls = len(harness.injector.calls)
        harness.clock.advance(days=1)
        harness.office.run_due()
        assert len(harness.injector.calls) == calls, "a refused credential was retried"
        assert harness.posts() == []

    def test_rate_limit_waits_for_the_reset(self, harness: Harness) -> None:
        self._applies("rate_limit")
        reset = (harness.clock() + dt.timedelta(minutes=10)).replace(microsecond=0)
        harness.wire.fail_next("rate_limited", reset_at=reset)
        with pytest.raises(RateLimited) as raised:
            harness.publisher().publish(harness.post(), MemoryProgress())
        assert raised.value.reset_at == reset, (
            f"reset_at is {raised.value.reset_at!r}; the platform said {reset!r}")
        item = harness.ready_item()
        harness.wire.fail_next("rate_limited", reset_at=reset)
        pub = harness.office.post(item.id, by="rina").publications[harness.channel]
        assert (pub.state, pub.error_class) == ("failed", "RateLimited")
        assert pub.next_attempt_at == reset
        calls = len(harness.injector.calls)
        harness.clock.advance(minutes=5)
        harness.office.run_due()
        assert len(harness.injector.calls) == calls, "retried before the reset time"
        harness.clock.set(reset)
        assert harness.office.run_due()[0].done
        assert len(harness.posts()) == 1

    def test_server_error_is_retried_with_backoff(self, harness: Harness) -> None:
        self._applies("server_error")
        harness.wire.fail_next("server_error")
        with pytest.raises(PlatformError):
            harness.publisher().publish(harness.post(), MemoryProgress())
        item = harness.ready_item()
        harness.wire.fail_next("server_error")
        now = harness.clock()
        pub = harness.office.post(item.id, by="rina").publications[harness.channel]
        assert (pub.state, pub.error_class) == ("failed", "PlatformError")
        assert pub.next_attempt_at is not None, "a server error must be retried"
        assert now < pub.next_attempt_at <= now + RetryPolicy().max_delay
        harness.clock.set(pub.next_attempt_at)
        assert harness.office.run_due()[0].done
        assert len(harness.posts()) == 1

    def test_timeout_is_an_unknown_outcome(self, harness: Harness) -> None:
        self._applies("timeout")
        last = self.calls_per_post
        assert last >= 1, "calls_per_post is 0: no request can time out; opt out of 'timeout'"
        for call in range(1, last):
            harness.injector.arm("timeout_after_send", call)
            try:
                harness.publisher().publish(harness.post(), MemoryProgress())
            except requests.RequestException as exc:
                pytest.fail(f"a raw {type(exc).__name__} escaped publish() at call {call}; "
                            "raise OutcomeUnknown (or PlatformError where a repeat is "
                            "harmless)")
            except PublishError:
                pass  # earlier calls may be PlatformError or OutcomeUnknown
        # The call that makes the post public: it may have posted, so it is unknown.
        harness.injector.arm("timeout_after_send", last)
        with pytest.raises(OutcomeUnknown) as raised:
            harness.publisher().publish(harness.post(), MemoryProgress())
        assert raised.value.channel == harness.channel

    def test_check_passes_with_good_credentials(self, harness: Harness) -> None:
        self._applies("check")
        said = harness.publisher().check()
        assert said is None or isinstance(said, str), (
            f"check() returned {said!r}; return None or a one-line summary")
        assert harness.posts() == [], "check() posted something"

    def test_check_refuses_bad_credentials(self, harness: Harness) -> None:
        self._applies("check_bad_credentials")
        assert self.bad_environ, "set bad_environ (credentials the wire fake refuses)"
        with pytest.raises(AuthenticationFailed):
            harness.publisher(self.bad_environ).check()

    def test_secrets_never_show(self, harness: Harness) -> None:
        self._applies("secrets")
        secrets = {v for v in (*self.environ.values(), *self.bad_environ.values()) if v}
        assert secrets, "set environ/bad_environ with the (fake) secret values"
        assert all(len(s) >= 6 for s in secrets), "use fake secrets of 6+ characters"
        errors: list[BaseException] = []
        try:
            harness.publisher(self.bad_environ).check()
        except HumasflowError as exc:
            errors.append(exc)
        for kind in ("unauthorized", "rate_limited", "server_error"):
            harness.wire.fail_next(kind, reset_at=harness.clock() + dt.timedelta(minutes=5))
            try:
                harness.publisher().publish(harness.post(), MemoryProgress())
            except HumasflowError as exc:
                errors.append(exc)
        harness.injector.arm("timeout_after_send", max(self.calls_per_post, 1))
        try:
            harness.publisher().publish(harness.post(), MemoryProgress())
        except HumasflowError as exc:
            errors.append(exc)
        assert errors, "no error was raised to look at"
        texts = [repr(harness.publisher()), repr(harness.publisher(self.bad_environ))]
        for error in errors:
            texts.extend(_error_texts(error))
        item = harness.ready_item()
        harness.wire.fail_next("unauthorized")
        harness.office.post(item.id, by="rina")
        record = io.StringIO()
        harness.office.export(record)
        texts.append(record.getvalue())
        texts.append(repr(harness.office.status(item.id)))
        for secret in secrets:
            leaks = [t for t in texts if secret in t]
            assert not leaks, f"a credential value shows in: {leaks[0][:300]}"

    def test_no_double_post(self, harness: Harness, fault: tuple[str, int]) -> None:
        self._applies("no_double_post")
        point, call = fault
        if point == "server_error_after_send":
            self._applies("server_error_after_send")
        item = harness.ready_item()
        if point == "server_error_after_send":
            harness.injector.before_call(
                call, lambda: harness.wire.fail_next("server_error", applied=True))
        else:
            harness.injector.arm(point, call)
        harness.post_item(item.id)
        if point != "server_error_after_send":
            assert harness.injector.fired, f"the fault {point} at call {call} never happened"
        harness.settle(item.id)

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _assert_no_network(harness: Harness, before: int) -> None:
        assert not harness.injector.forbidden, (
            f"validate() made requests: {harness.injector.forbidden}")
        assert harness.wire.count_calls() == before, "validate() reached the platform"


def _error_texts(error: BaseException) -> Iterator[str]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(current.args)
        yield repr(vars(current))
        current = current.__cause__ or current.__context__
