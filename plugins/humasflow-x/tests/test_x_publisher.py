"""The X publisher at the wire: tweepy's real code on a fake X (``responses``).

Rules checked here: each request goes through the publisher's session with a timeout
and the channel's signature; a post carries its text, media (uploaded through the v2
endpoints, alt text through the media metadata endpoint), poll and reply target; a
chunked upload follows ``pending → in_progress → succeeded`` waiting as X says and no
longer than allowed; X's errors become humasflow's (401, 403 duplicate, 403 access,
429 with either reset header, 5xx, a timeout); a thread interrupted at any part resumes
from the last recorded part without a second copy of any part; reconcile finds a post
whose answer was lost; OAuth 2.0 tokens are refreshed only where they can be kept.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import logging
import re

import pytest
import requests
from humasflow import (
    AuthenticationFailed,
    ContentRejected,
    OutcomeUnknown,
    PlatformError,
    Post,
    RateLimited,
    Receipt,
    plugins,
)
from humasflow.testing import FaultInjector, MemoryProgress

from humasflow_x import PUBLISHER, XPublisher
from humasflow_x.testing import FAKE_CREDENTIALS
from humasflow_x.testing import FAKE_OAUTH1 as OAUTH1
from humasflow_x.testing import FAKE_OAUTH2 as OAUTH2

THREAD = " ".join(f"Bagian {n}: rangkaian acara Dies Natalis ke-44 FISIP Universitas "
                  "Brawijaya berlangsung sepanjang pekan." for n in range(1, 8))


def post(text: str = "Selamat Dies Natalis ke-44 FISIP UB!", media=(), **options) -> Post:
    return Post(item_id=7, channel="x", title="Dies Natalis", text=text,
                media=tuple(media), options=options, idempotency_key="hf-" + "0" * 32)


@pytest.fixture
def seen(fake, monkeypatch):
    """Every request's method, URL, timeout and Authorization kind."""
    calls = []
    original = requests.Session.request

    def request(self, method, url, **kwargs):
        calls.append((method, url, kwargs.get("timeout"),
                      str((kwargs.get("headers") or {}).get("Authorization", ""))))
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", request)
    return calls


def test_the_entry_point_registers_the_publisher():
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="humasflow")}
    assert names.get(PUBLISHER) == "humasflow_x"
    assert plugins.publisher_factories()[PUBLISHER] is XPublisher


def test_a_post_with_an_image_and_alt_text(fake, make, stored, seen):
    image = stored.image("Poster Dies Natalis ke-44")
    progress = MemoryProgress()

    receipt = make().publish(post(media=[image]), progress)

    [tweet] = fake.thread()
    assert receipt == Receipt(tweet["id"], f"https://x.com/fisip_ub/status/{tweet['id']}")
    assert tweet["text"] == "Selamat Dies Natalis ke-44 FISIP UB!"
    [media_id] = tweet["media_ids"]
    assert fake.media[media_id]["alt"] == "Poster Dies Natalis ke-44"
    assert fake.media[media_id]["kind"] == "tweet_image"
    assert [(m, u.split("/2/", 1)[1]) for m, u, *_ in seen] == [
        ("GET", "users/me"), ("POST", "media/upload"), ("POST", "media/metadata"),
        ("POST", "tweets")]
    assert seen[0][1].startswith("https://api.twitter.com/")      # tweepy's host
    assert seen[1][1].startswith("https://api.x.com/")            # the v2 media host
    assert [t for *_, t, _a in seen] == [10.0, 60.0, 10.0, 10.0]  # bytes get longer
    assert progress["parts"] == [tweet["id"]]
    assert progress["sending"] is None
    assert progress["user"] == {"id": fake.user_id, "username": "fisip_ub", "name": "FISIP UB"}


def test_the_signature_is_checked_by_the_fake(fake, make, stored):
    wrong = {**OAUTH1, "consumer_secret": "fake-consumer-secret-wrong"}
    with pytest.raises(AuthenticationFailed, match="access token and secret"):
        make(credentials=wrong).publish(post(media=[stored.image()]), MemoryProgress())
    assert fake.thread() == []


def test_poll_and_reply_target_go_in_the_create_call(fake, make):
    parent = make().publish(post("Pengumuman wisuda"), MemoryProgress())
    make().publish(post("Datang ke wisuda?", poll={"options": ["Ya", "Tidak"],
                                                   "duration_minutes": 1440},
                        reply_to=f"https://x.com/fisip_ub/status/{parent.platform_id}"),
                   MemoryProgress())
    reply = fake.thread()[1]
    assert reply["reply_to"] == parent.platform_id
    assert reply["poll"] == {"options": ["Ya", "Tidak"], "duration_minutes": 1440}


def test_a_video_goes_up_in_bounded_chunks_and_waits_as_x_says(fake, make, stored, seen):
    video = stored.video(padding=300 * 1024, alt="Cuplikan acara")
    events = []
    publisher = make({"chunk_size": 100 * 1024})
    publisher.on_upload = events.append

    publisher.publish(post(media=[video]), MemoryProgress())

    paths = [u.split("/2/", 1)[1] for _m, u, *_ in seen]
    media_id = fake.thread()[0]["media_ids"][0]
    appends = [p for p in paths if p.endswith("/append")]
    assert paths[:2] == ["users/me", "media/upload/initialize"]
    assert len(appends) == -(-video.size // (100 * 1024))
    assert paths[2 + len(appends):] == [
        f"media/upload/{media_id}/finalize", "media/upload", "media/upload",
        "media/metadata", "tweets"]
    assert publisher.slept == [2.0, 5.0]  # check_after_secs of pending, then in_progress
    media = fake.media[media_id]
    assert media["state"] == "succeeded"
    assert media["kind"] == "tweet_video"
    assert sum(len(c) for c in media["chunks"].values()) == video.size
    assert [e["state"] for e in events][-3:] == ["pending", "in_progress", "succeeded"]
    assert events[0] == {"media": 0, "state": "uploading", "sent": 100 * 1024,
                         "total": video.size}


def test_uploads_are_retried_at_once_the_create_call_is_not(fake, make, stored):
    fake.fail_next("server_error", path="/2/media/upload$")
    fake.fail_next("server_error", path="/2/media/metadata", applied=True)
    publisher = make()
    publisher.publish(post(media=[stored.image()]), MemoryProgress())
    assert [p for _m, p in fake.requests].count("/2/media/upload") == 2
    assert [p for _m, p in fake.requests].count("/2/media/metadata") == 2
    fake.fail_next("server_error", path="/2/tweets")
    with pytest.raises(PlatformError):
        make().publish(post("Kedua", [stored.image()]), MemoryProgress())
    assert [p for _m, p in fake.requests].count("/2/tweets") == 2  # once each post


def test_a_video_x_cannot_process_is_refused_and_nothing_is_posted(fake, make, stored):
    fake.processing = ("pending", "in_progress", "failed")
    with pytest.raises(ContentRejected, match="Unsupported video format"):
        make().publish(post(media=[stored.video()]), MemoryProgress())
    assert fake.thread() == []


def test_waiting_for_processing_is_bounded(fake, make, stored):
    fake.processing = ("pending",) + ("in_progress",) * 50 + ("succeeded",)
    publisher = make({"processing_max_wait": 12})
    with pytest.raises(PlatformError, match="still processing"):
        publisher.publish(post(media=[stored.video()]), MemoryProgress())
    assert sum(publisher.slept) <= 12
    assert fake.thread() == []


def test_a_duplicate_is_looked_up_not_reposted_nor_taken_for_success(fake, make, clock):
    make().publish(post("Selamat pagi!"), MemoryProgress())   # an older post, same text
    clock.advance(days=2)
    progress = MemoryProgress()
    with pytest.raises(OutcomeUnknown, match="duplicate"):
        make().publish(post("Selamat pagi!"), progress)
    assert progress["duplicates"] == [0]
    # The post in doubt is not among this attempt's: it is the older one, so the text
    # must change (reconcile lets the next attempt decide, which refuses it).
    assert make().reconcile(post("Selamat pagi!"), progress) is None
    with pytest.raises(ContentRejected, match="duplicate of an earlier post"):
        make().publish(post("Selamat pagi!"), progress)
    assert len(fake.thread()) == 1


@pytest.mark.parametrize(("kind", "words"), [
    ("forbidden", "Read and write"), ("not_enrolled", "Project")])
def test_other_403s_say_which_access_the_app_lacks(fake, make, kind, words):
    fake.fail_next(kind, path="/2/tweets")
    with pytest.raises(AuthenticationFailed, match=words) as raised:
        make().publish(post(), MemoryProgress())
    assert raised.value.channel == "x"


def test_401_names_the_credentials_to_renew(fake, make):
    fake.fail_next("unauthorized")
    with pytest.raises(AuthenticationFailed, match="access token and secret") as raised:
        make().publish(post(), MemoryProgress())
    assert raised.value.credential == "access_token"
    for secret in OAUTH1.values():
        assert secret not in str(raised.value)
        assert secret not in repr(raised.value)


def test_429_resets_at_the_window_reset(fake, make, clock):
    reset = clock() + dt.timedelta(minutes=12)
    fake.fail_next("rate_limited", reset_at=reset, path="/2/tweets", headers={
        "x-user-limit-24hour-limit": "17", "x-user-limit-24hour-remaining": "9",
        "x-user-limit-24hour-reset": str(int((clock() + dt.timedelta(hours=20))
                                             .timestamp()))})
    with pytest.raises(RateLimited) as raised:
        make().publish(post(), MemoryProgress())
    assert raised.value.reset_at == reset.replace(microsecond=0)  # the daily cap is not hit


def test_429_resets_at_the_24_hour_reset_when_that_is_later(fake, make, clock):
    daily = (clock() + dt.timedelta(hours=20)).replace(microsecond=0)
    fake.fail_next("rate_limited", reset_at=clock() + dt.timedelta(minutes=12),
                   path="/2/tweets", headers={
                       "x-app-limit-24hour-limit": "10000",
                       "x-app-limit-24hour-remaining": "0",
                       "x-app-limit-24hour-reset": str(int(daily.timestamp()))})
    with pytest.raises(RateLimited, match=re.escape(daily.isoformat()[:16])) as raised:
        make().publish(post(), MemoryProgress())
    assert raised.value.reset_at == daily


def test_5xx_is_transient_and_a_retry_looks_before_it_sends(fake, make):
    fake.fail_next("server_error", applied=True, path="/2/tweets")
    progress = MemoryProgress()
    with pytest.raises(PlatformError):
        make().publish(post(), progress)
    assert len(fake.thread()) == 1           # X did it, and said 503
    receipt = make().publish(post(), progress)
    assert [t["id"] for t in fake.thread()] == [receipt.platform_id]


def test_a_timeout_after_the_post_was_made_is_unknown_and_reconcile_finds_it(
        fake, make, stored):
    text = "Info & pendaftaran: https://fisip.ub.ac.id/dies-natalis <gratis>"
    injector = FaultInjector()
    injector.arm("timeout_after_send", 1, match="/2/tweets")
    progress = MemoryProgress()
    image = stored.image()
    with pytest.raises(OutcomeUnknown):
        make(session=injector.session()).publish(post(text, [image]), progress)
    [tweet] = fake.thread()
    receipt = make().reconcile(post(text, [image]), progress)
    assert receipt == Receipt(tweet["id"], f"https://x.com/fisip_ub/status/{tweet['id']}")


def test_reconcile_absent_and_cannot_tell(fake, make, clock):
    progress = MemoryProgress(user={"id": fake.user_id, "username": "fisip_ub"},
                              sending={"part": 0, "at": clock().isoformat()})
    assert make().reconcile(post(), progress) is None
    fake.fail_next("server_error")
    with pytest.raises(OutcomeUnknown):
        make().reconcile(post(), progress)


def test_reconcile_does_not_take_an_older_identical_post(fake, make, clock):
    make().publish(post(), MemoryProgress())
    clock.advance(hours=3)
    progress = MemoryProgress(sending={"part": 0, "at": clock().isoformat()})
    assert make().reconcile(post(), progress) is None


@pytest.mark.parametrize("call", range(1, 10))
@pytest.mark.parametrize("point", ["timeout_after_send", "crash_after_send",
                                   "crash_before_send", "timeout_before_send"])
def test_a_thread_interrupted_at_any_call_resumes_without_a_second_copy(
        fake, make, stored, point, call):
    """The thread: account, image, alt text, then three parts, and a look-up or two."""
    images = [stored.image("Poster"), stored.image("Poster 2", name="p2.png",
                                                   colour=(9, 9, 9))]
    the_post = post(THREAD, images, thread=True)
    injector = FaultInjector()
    injector.arm(point, call)
    progress = MemoryProgress()
    with contextlib.suppress(BaseException):  # the injected fault, whatever it is
        make(session=injector.session()).publish(the_post, progress)
    for _ in range(3):  # a restarted worker: reconcile if unknown, then post again
        try:
            make().reconcile(the_post, progress)
            receipt = make().publish(the_post, progress)
            break
        except OutcomeUnknown:
            continue
    thread = fake.thread()
    assert len(thread) == 3, thread
    assert receipt.platform_id == ",".join(t["id"] for t in thread)
    assert [t["reply_to"] for t in thread] == [None, thread[0]["id"], thread[1]["id"]]
    assert [t["text"][-4:] for t in thread] == [" 1/3", " 2/3", " 3/3"]
    assert [len(t["media_ids"]) for t in thread] == [2, 0, 0]


def test_a_thread_resumes_after_its_last_recorded_part(fake, make):
    first = make().publish(post(THREAD, thread=True), MemoryProgress())
    ids = first.platform_id.split(",")
    # As if the process died after part 2 was recorded: it replies to part 2.
    fake.tweets.pop()
    progress = MemoryProgress(user={"id": fake.user_id, "username": "fisip_ub"},
                              parts=ids[:2], sending=None)
    receipt = make().publish(post(THREAD, thread=True), progress)
    assert fake.thread()[2]["reply_to"] == ids[1]
    assert receipt.url == f"https://x.com/fisip_ub/status/{ids[0]}"


# -- OAuth 2.0 ------------------------------------------------------------------------------


def test_oauth2_refreshes_a_refused_token_where_it_can_be_kept(fake, make):
    fake.credentials["oauth2_token"] = "fake-oauth2-token-already-renewed"
    refreshed = []
    receipt = make(credentials=dict(OAUTH2), writable=True,
                   refreshed=refreshed).publish(post(), MemoryProgress())
    assert receipt.platform_id
    assert [(name, value) for name, value, _ in refreshed] == [
        ("refresh_token", "fake-refresh-token-renewed-0001"),
        ("access_token", "fake-oauth2-token-renewed-0001")]


def test_oauth2_without_a_keeping_source_does_not_refresh(fake, make):
    fake.credentials["oauth2_token"] = "fake-oauth2-token-already-renewed"
    with pytest.raises(AuthenticationFailed, match=r"OAuth 2\.0 access token was refused"):
        make(credentials=dict(OAUTH2), writable=False).publish(post(), MemoryProgress())
    assert fake.refreshes == 0  # the single-use refresh token is not spent


def test_oauth2_token_past_its_expiry_says_renew_by_before_any_call(fake, make, clock):
    expires = clock() + dt.timedelta(minutes=3)
    expiries = []
    with pytest.raises(AuthenticationFailed, match="renew it by") as raised:
        make(credentials={**OAUTH2, "expires_at": expires.isoformat()},
             expiries=expiries).publish(post(), MemoryProgress())
    assert expires.isoformat() in str(raised.value)
    assert fake.count_calls() == 0
    assert expiries == [("access_token", expires)]


def test_oauth2_token_about_to_expire_is_refreshed_first(fake, make, clock):
    refreshed = []
    expires = clock() + dt.timedelta(minutes=1)
    make(credentials={**OAUTH2, "expires_at": expires.isoformat()}, writable=True,
         refreshed=refreshed).publish(post(), MemoryProgress())
    assert fake.requests[0] == ("POST", "/2/oauth2/token")
    assert refreshed[-1][0] == "expires_at"
    assert refreshed[1][2] == clock() + dt.timedelta(hours=2)


def test_no_token_shows_in_tweepy_s_debug_log(fake, make, caplog, stored):
    caplog.set_level(logging.DEBUG)
    make(credentials=dict(OAUTH2)).publish(post(media=[stored.image()]), MemoryProgress())
    make().publish(post("Kedua"), MemoryProgress())
    assert "Making API request" in caplog.text
    for secret in (*OAUTH1.values(), FAKE_CREDENTIALS["oauth2_token"]):
        assert secret not in caplog.text


# -- check ------------------------------------------------------------------------------------


def test_check_asks_who_posts_and_posts_nothing(fake, make, caplog):
    caplog.set_level(logging.INFO, logger="humasflow_x")
    publisher = make()
    assert publisher.check() == "posts as @fisip_ub (OAuth 1.0a user context)"
    account = publisher.account()
    assert (account.username, account.auth) == ("fisip_ub", "OAuth 1.0a user context")
    assert make(credentials=dict(OAUTH2)).account().auth == "OAuth 2.0 user token"
    assert "posts as @fisip_ub (OAuth 1.0a user context)" in caplog.text
    assert fake.thread() == []
    fake.revoke()
    with pytest.raises(AuthenticationFailed):
        make().check()


def test_a_local_fake_x_server_takes_the_same_calls(clock, make, stored):
    from humasflow_x.testing import FakeX

    fake = FakeX(clock=clock)
    with fake.serve() as url:
        receipt = make({"api_url": url}).publish(post(media=[stored.image()]),
                                                 MemoryProgress())
    assert [t["id"] for t in fake.thread()] == [receipt.platform_id]
    assert fake.media[fake.thread()[0]["media_ids"][0]]["alt"] == "Poster Dies Natalis"


def test_the_publisher_repr_shows_no_secret(make):
    text = repr(make()) + repr(make(credentials=dict(OAUTH2)))
    assert all(s not in text for s in (*OAUTH1.values(), *OAUTH2.values()))
