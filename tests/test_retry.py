"""Retries: only what is safe, when it is due, bounded, and ending with what to do.

The policy is checked on its own (each error class, the backoff's bounds, its settings),
then through the dispatcher with a steerable clock: nothing is tried before its time.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import random
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from humasflow import Office
from humasflow.errors import (
    AuthenticationFailed,
    ConfigurationError,
    ContentRejected,
    OutcomeUnknown,
    PlatformError,
    PublishError,
    RateLimited,
    WaitingForPerson,
)
from humasflow.hookspecs import hookimpl
from humasflow.publishing.retry import RetryPolicy
from humasflow.testing import FakePublisher, fake_publisher_plugin, plugin_registered

NOW = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.timezone.utc)
S = dt.timedelta(seconds=1)
POLICY = RetryPolicy(max_attempts=10, base_delay=30 * S, max_delay=dt.timedelta(minutes=30),
                     jitter=0.2, max_reset_wait=dt.timedelta(hours=24))
NO_JITTER = RetryPolicy(max_attempts=10, base_delay=30 * S,
                        max_delay=dt.timedelta(minutes=30), jitter=0)


# -- the policy on its own ----------------------------------------------------------------------


@pytest.mark.parametrize("error", [
    AuthenticationFailed("the token expired", credential="access_token"),
    ContentRejected("duplicate content"),
    OutcomeUnknown("timed out after sending"),
    WaitingForPerson("post by hand"),
    PublishError("something else"),
])
def test_errors_that_are_not_safe_to_retry_are_never_retried(error):
    assert POLICY.next_attempt(error, 1, NOW, random.Random(1)) is None


def test_a_rate_limit_is_retried_exactly_at_its_reset_time_jitter_or_not():
    reset = NOW + dt.timedelta(minutes=17, seconds=3)
    for seed in range(20):
        assert POLICY.next_attempt(RateLimited("slow down", reset_at=reset), 1, NOW,
                                   random.Random(seed)) == reset


def test_a_reset_time_already_past_means_try_now():
    error = RateLimited("slow down", reset_at=NOW - dt.timedelta(minutes=5))
    assert POLICY.next_attempt(error, 1, NOW) == NOW


def test_a_reset_later_than_the_longest_wait_stops_the_retries():
    policy = RetryPolicy(max_reset_wait=dt.timedelta(hours=1))
    at_limit = RateLimited("daily cap", reset_at=NOW + dt.timedelta(hours=1))
    beyond = RateLimited("daily cap", reset_at=NOW + dt.timedelta(hours=1, seconds=1))
    assert policy.next_attempt(at_limit, 1, NOW) == NOW + dt.timedelta(hours=1)
    assert policy.next_attempt(beyond, 1, NOW) is None


def test_a_rate_limit_without_reset_time_backs_off_like_a_server_error():
    assert NO_JITTER.next_attempt(RateLimited("slow down"), 2, NOW) == NOW + 60 * S


def test_server_errors_back_off_exponentially_up_to_the_longest_delay():
    policy = RetryPolicy(max_attempts=20, base_delay=30 * S, max_delay=300 * S, jitter=0)
    delays = [policy.next_attempt(PlatformError("502", code=502), n, NOW) - NOW
              for n in range(1, 8)]
    assert delays == [30 * S, 60 * S, 120 * S, 240 * S, 300 * S, 300 * S, 300 * S]


def test_jitter_only_shortens_a_delay_and_by_at_most_its_fraction():
    rng = random.Random(7)
    for attempts in range(1, 6):
        full = NO_JITTER.next_attempt(PlatformError("503"), attempts, NOW) - NOW
        seen = {POLICY.next_attempt(PlatformError("503"), attempts, NOW, rng) - NOW
                for _ in range(200)}
        assert all(full * 0.8 - dt.timedelta(microseconds=1) <= d <= full for d in seen)
        assert len(seen) > 100, "jitter should spread the workers' retries"


def test_attempts_are_bounded_the_first_one_included():
    policy = RetryPolicy(max_attempts=3, jitter=0)
    assert policy.next_attempt(PlatformError("500"), 2, NOW) is not None
    assert policy.next_attempt(PlatformError("500"), 3, NOW) is None
    assert policy.next_attempt(RateLimited("x", reset_at=NOW + S), 3, NOW) is None


def test_many_attempts_do_not_overflow_the_delay():
    policy = RetryPolicy(max_attempts=10_000, jitter=0)
    assert policy.next_attempt(PlatformError("500"), 5_000, NOW) == NOW + policy.max_delay


def test_settings_build_a_policy_with_seconds_for_durations():
    policy = RetryPolicy.from_settings({"max_attempts": 3, "base_delay": 10, "max_delay": 60.5,
                                        "jitter": 0, "max_reset_wait": 3600})
    assert policy == RetryPolicy(max_attempts=3, base_delay=10 * S,
                                 max_delay=dt.timedelta(seconds=60.5), jitter=0.0,
                                 max_reset_wait=dt.timedelta(hours=1))
    assert RetryPolicy.from_settings(None) == RetryPolicy()
    assert RetryPolicy.from_settings({}) == RetryPolicy()


@pytest.mark.parametrize(("settings", "key"), [
    ({"max_atempts": 3}, "max_atempts"),
    ({"base_delay": -1}, "base_delay"),
    ({"max_delay": "30m"}, "max_delay"),
    ({"max_reset_wait": True}, "max_reset_wait"),
    ({"jitter": 1.5}, "jitter"),
    ({"max_attempts": 0}, "max_attempts"),
    ({"max_attempts": 2.5}, "max_attempts"),
])
def test_a_bad_setting_is_refused_naming_its_key(settings, key):
    with pytest.raises(ConfigurationError, match=repr(key)):
        RetryPolicy.from_settings(settings)


def test_an_unknown_setting_lists_the_known_ones():
    with pytest.raises(ConfigurationError) as info:
        RetryPolicy.from_settings({"retries": 3})
    assert "max_attempts" in str(info.value)
    assert "base_delay" in str(info.value)


@given(base=st.integers(0, 10**6), cap=st.integers(0, 10**7), max_attempts=st.integers(1, 120))
def test_without_jitter_delays_never_shrink_and_never_pass_the_cap(base, cap, max_attempts):
    policy = RetryPolicy(max_attempts=max_attempts, base_delay=base * S, max_delay=cap * S,
                         jitter=0)
    retry_times = [policy.next_attempt(PlatformError("500"), n, NOW)
                   for n in range(1, max_attempts)]
    assert None not in retry_times
    delays = [t - NOW for t in retry_times]
    assert all(a <= b for a, b in pairwise(delays))
    assert all(d <= cap * S for d in delays)
    assert policy.next_attempt(PlatformError("500"), max_attempts, NOW) is None


@given(attempts=st.integers(1, 60), jitter=st.floats(0, 1), seed=st.integers(0, 2**32),
       base=st.integers(0, 3600), cap=st.integers(0, 86_400))
def test_with_jitter_a_delay_stays_between_its_shortened_and_full_length(
        attempts, jitter, seed, base, cap):
    policy = RetryPolicy(max_attempts=100, base_delay=base * S, max_delay=cap * S,
                         jitter=jitter)
    full = RetryPolicy(max_attempts=100, base_delay=base * S, max_delay=cap * S, jitter=0)
    limit = full.next_attempt(PlatformError("500"), attempts, NOW) - NOW
    got = policy.next_attempt(PlatformError("500"), attempts, NOW, random.Random(seed)) - NOW
    assert limit * (1 - jitter) - dt.timedelta(microseconds=1) <= got <= limit
    assert got <= cap * S


# -- through the dispatcher, on the steerable clock ---------------------------------------------


@pytest.fixture
def fake(office):
    plugin = fake_publisher_plugin()
    with plugin_registered(plugin):
        yield plugin


def publisher(plugin, name: str) -> FakePublisher:
    return plugin.publishers.setdefault(name, FakePublisher(channel=name))


def ready(office, image, channels) -> int:
    """An item at the posting step, approved and rechecked."""
    item = office.new_item("Dies Natalis", by="rina", channels=channels)
    office.complete(item.id, by="rina", text="Selamat Dies Natalis ke-38 FISIP UB")
    office.complete(item.id, by="rina", notes="Canva template 'dies'")
    office.complete(item.id, by="rina", media=[image])
    office.approve(item.id, by="budi", answer="OK by email")
    office.complete(item.id, by="rina", media=[image])
    office.pass_recheck(item.id, by="sari")
    return item.id


def test_a_server_error_is_retried_by_run_due_only_once_its_time_has_come(
        office, fake, clock, image):
    office.add_channel("x", "fake", settings={"retry": {"jitter": 0, "base_delay": 60}}, by="admin")
    office.add_channel("fb", "fake", by="admin")
    item_id = ready(office, image, ["x", "fb"])
    publisher(fake, "x").fail_with = PlatformError("503 Service Unavailable", code=503)

    report = office.post(item_id, by="rina")
    x = report.publications["x"]
    assert (x.state, x.attempts, x.error_class) == ("failed", 1, "PlatformError")
    assert x.next_attempt_at == clock() + 60 * S
    assert not report.done

    clock.advance(seconds=59)
    assert office.run_due() == []  # nothing due: the item is not even looked at
    assert office.publications(item_id)["x"].attempts == 1
    assert publisher(fake, "x").posted == []

    clock.advance(seconds=1)
    (report,) = office.run_due()
    assert report.done
    assert report.publications["x"].attempts == 2
    assert [p.channel for p in publisher(fake, "x").posted] == ["x"]
    assert len(publisher(fake, "fb").posted) == 1  # the channel that worked is left alone


def test_run_due_judges_retries_at_the_time_it_is_given(office, fake, clock, image):
    office.add_channel("x", "fake", settings={"retry": {"jitter": 0, "base_delay": 60}}, by="admin")
    item_id = ready(office, image, ["x"])
    publisher(fake, "x").fail_with = PlatformError("502 Bad Gateway", code=502)
    office.post(item_id, by="rina")

    assert office.run_due(clock() + 59 * S) == []
    (report,) = office.run_due(clock() + 60 * S)
    assert report.done
    assert report.publications["x"].attempts == 2


def test_a_rate_limit_is_retried_at_the_platforms_reset_time(office, fake, clock, image):
    office.add_channel("x", "fake", by="admin")
    item_id = ready(office, image, ["x"])
    reset = clock() + dt.timedelta(minutes=15)
    publisher(fake, "x").fail_with = RateLimited("429 Too Many Requests", reset_at=reset)

    office.post(item_id, by="rina")
    x = office.publications(item_id)["x"]
    assert (x.state, x.error_class, x.next_attempt_at) == ("failed", "RateLimited", reset)

    clock.set(reset - S)
    assert office.run_due() == []
    assert office.publications(item_id)["x"].attempts == 1

    clock.set(reset)
    (report,) = office.run_due()
    assert report.done
    assert report.publications["x"].attempts == 2


def test_an_exhausted_channel_stops_and_says_what_to_do(office, fake, clock, image):
    office.add_channel("x", "fake", settings={
        "retry": {"max_attempts": 3, "jitter": 0, "base_delay": 10}}, by="admin")
    item_id = ready(office, image, ["x"])
    x = publisher(fake, "x")
    x.fail_with = PlatformError("500 Internal Server Error", code=500)
    office.post(item_id, by="rina")
    for wait in (10, 20):
        clock.advance(seconds=wait)
        x.fail_with = PlatformError("500 Internal Server Error", code=500)
        office.run_due()

    pub = office.publications(item_id)["x"]
    assert (pub.state, pub.attempts, pub.next_attempt_at) == ("failed", 3, None)
    assert "gave up after 3 attempts" in pub.error_message
    assert f"humasflow retry {item_id} x --as <your id>" in pub.error_message
    clock.advance(dt.timedelta(days=2))
    assert office.run_due() == []
    assert office.status(item_id).needs_person == ["x"]


def test_a_refused_credential_is_not_retried_and_the_message_names_it(
        office, fake, clock, image):
    secret = "xat-5ecret-VALUE"
    office.add_channel("x", "fake", credentials={"access_token": "X_ACCESS_TOKEN"}, by="admin")
    office = Office(office._store, clock=clock, environ={"X_ACCESS_TOKEN": secret},
                    media_store=office.media)
    item_id = ready(office, image, ["x"])
    publisher(fake, "x").fail_with = AuthenticationFailed(
        "401 Unauthorized: token expired", credential="access_token")

    report = office.post(item_id, by="rina")
    x = report.publications["x"]
    assert (x.state, x.error_class, x.next_attempt_at) == ("failed", "AuthenticationFailed",
                                                           None)
    assert "renew the credential 'access_token' (environment variable X_ACCESS_TOKEN)" \
        in x.error_message
    assert secret not in x.error_message
    assert report.needs_person == ["x"]

    clock.advance(dt.timedelta(days=1))
    assert office.run_due() == []
    assert office.publications(item_id)["x"].attempts == 1

    # Renewed: the staff member has it posted again.
    report = office.confirm(item_id, "x", by="rina", not_posted=True)
    assert report.done
    assert report.publications["x"].attempts == 2


class _Recorder:
    def __init__(self):
        self.calls = []

    @hookimpl
    def channel_failed(self, office, item, publication):
        self.calls.append(repr(publication))

    @hookimpl
    def channel_posted(self, office, item, publication):
        self.calls.append(repr(publication))


def test_a_missing_credential_fails_naming_the_variable_never_a_secret(
        office, fake, clock, image, caplog):
    secrets = {"FB_PAGE_TOKEN": "fbpage-5ecret-VALUE", "X_API_SECRET": "xapi-5ecret-VALUE"}
    office.add_channel("x", "fake", credentials={"api_key": "X_API_KEY",
                                                 "api_secret": "X_API_SECRET"}, by="admin")
    office.add_channel("fb", "fake", credentials={"page_token": "FB_PAGE_TOKEN"}, by="admin")
    office = Office(office._store, clock=clock, environ=secrets, media_store=office.media)
    item_id = ready(office, image, ["x", "fb"])  # validation needs no credential

    recorder = _Recorder()
    with plugin_registered(recorder), caplog.at_level(logging.DEBUG, logger="humasflow"):
        report = office.post(item_id, by="rina")

    x, fb = report.publications["x"], report.publications["fb"]
    assert fb.state == "posted"
    assert (x.state, x.error_class, x.next_attempt_at) == ("failed", "CredentialMissing", None)
    assert "X_API_KEY" in x.error_message
    assert publisher(fake, "x").posted == []

    out = io.StringIO()
    office.export(out)
    seen = "\n".join([out.getvalue(), caplog.text, *recorder.calls, repr(report),
                      *(str(p.error_message) for p in report.publications.values())])
    for value in secrets.values():
        assert value not in seen


def test_a_reset_beyond_the_longest_wait_says_when_the_limit_resets(
        office, fake, clock, image):
    office.add_channel("x", "fake", by="admin")  # default policy: waits up to 24 hours for a reset
    item_id = ready(office, image, ["x"])
    reset = clock() + dt.timedelta(days=2)
    publisher(fake, "x").fail_with = RateLimited("daily posting cap reached", reset_at=reset)

    office.post(item_id, by="rina")
    x = office.publications(item_id)["x"]
    assert (x.state, x.next_attempt_at) == ("failed", None)
    assert f"the limit resets at {reset.isoformat()}" in x.error_message
    assert f"humasflow retry {item_id} x --as <your id>" in x.error_message
