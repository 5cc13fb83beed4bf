"""The Instagram publisher at the wire: each post kind, container status sequences, the
publishing limit, each error class, crashes, and media Instagram cannot fetch.

Rules checked here: every request goes through the session with a timeout and the token
in a header; each container id is saved before the next call; a container's status
decides after an unknown outcome (``PUBLISHED`` is never published again); an expired
container is made again; a carousel resumes with the children it has; the limit is read
first and its error says when the window frees a post.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json

import pytest
import requests
import responses
from humasflow import (
    AuthenticationFailed,
    ConfigurationError,
    ContentRejected,
    OutcomeUnknown,
    PlatformError,
    RateLimited,
    Receipt,
    plugins,
)
from humasflow.testing import Crash, MemoryProgress, SteerableClock

from _instagram_support import TOKEN, calls, image, post, publisher, video
from humasflow_instagram import PUBLISHER, InstagramPublisher, prepare_settings
from humasflow_instagram.testing import InstagramFake

IG = "https://graph.instagram.com/v24.0"
FB = "https://graph.facebook.com/v24.0"


@pytest.fixture
def clock():
    return SteerableClock()


@pytest.fixture
def fake(clock):
    with InstagramFake(TOKEN, clock=clock) as fake:
        yield fake


def test_the_entry_point_registers_the_publisher():
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="humasflow")}
    assert names.get(PUBLISHER) == "humasflow_instagram"
    assert plugins.publisher_factories()[PUBLISHER] is InstagramPublisher


# -- each kind ------------------------------------------------------------------------------


def test_a_single_image_is_checked_created_polled_published_and_its_permalink_read(
        fake, clock):
    progress = MemoryProgress()
    poster = image(alt="Poster Dies Natalis")

    receipt = publisher(clock=clock).publish(post(poster), progress)

    [media] = fake.media
    assert receipt == Receipt(media["id"], media["permalink"])
    assert receipt.url.startswith("https://www.instagram.com/p/")
    assert calls(fake) == [
        ("GET", "me/content_publishing_limit"), ("POST", "me/media"),
        ("GET", media["container"]), ("POST", "me/media_publish"), ("GET", media["id"])]
    created = fake.requests[1][2]
    assert created == {"image_url": poster.url, "alt_text": "Poster Dies Natalis",
                       "caption": "Selamat Dies Natalis ke-44 FISIP UB! #DiesNatalis"}
    assert fake.requests[3][2] == {"creation_id": media["container"]}
    assert progress["container"] == media["container"]
    assert progress["media_id"] == media["id"]


def test_a_carousel_makes_each_item_then_the_parent_in_order(fake, clock):
    items = (image("a.jpg", alt="Slide 1"), video("b.mp4", duration=20), image("c.jpg"))
    progress = MemoryProgress()

    receipt = publisher(clock=clock).publish(post(*items), progress)

    [media] = fake.media
    assert receipt.platform_id == media["id"]
    creates = [f for m, p, f in fake.requests if m == "POST" and p.endswith("/media")]
    assert creates[:3] == [
        {"image_url": items[0].url, "alt_text": "Slide 1", "is_carousel_item": "true"},
        {"media_type": "VIDEO", "video_url": items[1].url, "is_carousel_item": "true"},
        {"image_url": items[2].url, "is_carousel_item": "true"}]
    assert creates[3]["media_type"] == "CAROUSEL"
    assert creates[3]["children"] == ",".join(progress["children"])
    assert media["children"] == progress["children"]
    assert media["media_type"] == "CAROUSEL"


def test_a_reel_sends_its_video_cover_and_share_to_feed(fake, clock):
    reel = post(video("reel.mp4", duration=42), image("cover.jpg", width=1080, height=1920),
                kind="reel", share_to_feed=False, thumb_offset=1500)
    made = publisher(clock=clock)

    receipt = made.publish(reel, MemoryProgress())

    created = fake.requests[1][2]
    assert created == {"media_type": "REELS", "video_url": reel.media[0].url,
                       "caption": reel.text, "share_to_feed": "false",
                       "cover_url": reel.media[1].url, "thumb_offset": "1500"}
    assert receipt.platform_id == fake.media[0]["id"]
    # The video was IN_PROGRESS twice: two bounded, growing waits before FINISHED.
    assert made.waits == [2.0, 4.0]


def test_a_single_video_is_a_reel_shared_to_the_feed_by_default(fake, clock):
    publisher(clock=clock).publish(post(video()), MemoryProgress())
    created = fake.requests[1][2]
    assert (created["media_type"], created["share_to_feed"]) == ("REELS", "true")


@pytest.mark.parametrize("media", [image("story.jpg", width=1080, height=1920),
                                   video("story.mp4", duration=15)])
def test_a_story_has_no_caption_and_is_found_among_stories(fake, clock, media):
    progress = MemoryProgress()
    receipt = publisher(clock=clock).publish(post(media, kind="story"), progress)
    created = fake.requests[1][2]
    key = "video_url" if media.kind == "video" else "image_url"
    assert created == {"media_type": "STORIES", key: media.url}
    assert receipt.url.startswith("https://www.instagram.com/stories/fisipub/")
    # After a lost answer, the lookup reads the stories edge.
    found = publisher(clock=clock).reconcile(post(media, kind="story"), MemoryProgress(
        container=progress["container"],
        container_created_at=progress["container_created_at"]))
    assert found == receipt
    assert calls(fake)[-1] == ("GET", "me/stories")


def test_facebook_login_uses_graph_facebook_com_the_account_id_and_the_version(clock):
    with InstagramFake(TOKEN, login="facebook", version="v25.0", clock=clock) as fake:
        made = publisher({"login": "facebook", "user_id": fake.user_id,
                          "api_version": "v25.0"}, clock=clock)
        made.publish(post(), MemoryProgress())
        urls = [c.request.url for c in fake.mock.calls]
    assert len(urls) == 5
    assert all(u.startswith("https://graph.facebook.com/v25.0/") for u in urls)
    assert urls[0].startswith(f"https://graph.facebook.com/v25.0/{fake.user_id}/"
                              "content_publishing_limit")


def test_every_request_has_a_timeout_and_the_token_only_in_a_header(fake, clock, monkeypatch):
    seen = []
    original = requests.Session.request

    def request(self, method, url, **kwargs):
        seen.append((kwargs.get("timeout"), url, kwargs.get("headers", {})))
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(requests.Session, "request", request)
    made = publisher({"timeout": 7.5}, clock=clock)
    made.publish(post(image("a.jpg"), image("b.jpg")), MemoryProgress())
    made.check()
    assert seen
    assert {t for t, _u, _h in seen} == {7.5}
    assert all(TOKEN not in url for _t, url, _h in seen)
    assert all(h.get("Authorization") == f"Bearer {TOKEN}" for _t, _u, h in seen)
    assert TOKEN not in repr(made)


# -- container status sequences --------------------------------------------------------------


def test_polling_is_bounded_and_a_later_try_goes_on_with_the_same_container(fake, clock):
    fake.video_polls = 7  # status reads that answer IN_PROGRESS
    made = publisher({"poll_interval": 5, "poll_timeout": 60}, clock=clock)
    progress = MemoryProgress()
    with pytest.raises(PlatformError, match="still processing") as raised:
        made.publish(post(video()), progress)
    assert made.waits == [5, 10, 20, 25]  # doubling, capped at 30 s, 60 s in all
    assert sum(made.waits) == 60
    assert progress["container_status"] == "IN_PROGRESS"
    assert raised.value.code == "IN_PROGRESS"
    container = progress["container"]

    made.publish(post(video()), progress)

    creates = [p for m, p, _f in fake.requests if m == "POST" and p.endswith("/media")]
    assert len(creates) == 1, "the container was made again"
    assert fake.media[0]["container"] == container


def test_a_container_in_error_is_refused_with_its_status_and_dropped(fake, clock):
    fake.unreachable.add("media.fisip.example")
    progress = MemoryProgress()
    with pytest.raises(ContentRejected) as raised:
        publisher(clock=clock).publish(post(video("clip.mp4")), progress)
    message = str(raised.value)
    assert "could not fetch" in message
    assert "https://media.fisip.example/humas/clip.mp4" in message
    assert "2207052" in message
    assert progress["container"] is None  # the next try makes a new one
    assert fake.media == []


def test_an_expired_container_is_made_again_and_published_once(fake, clock):
    made = publisher(clock=clock)
    progress = MemoryProgress()
    first = made._create(post(), "image", progress)  # an earlier attempt stopped here
    fake.expire(first)

    receipt = made.publish(post(), progress)

    [media] = fake.media
    assert media["container"] != first
    assert receipt.platform_id == media["id"]


def test_a_container_that_expired_a_day_later_is_made_again(fake, clock):
    made = publisher(clock=clock)
    progress = MemoryProgress()
    first = made._create(post(), "image", progress)
    clock.advance(hours=25)
    made.publish(post(), progress)
    assert fake.containers[first]["status_code"] == "EXPIRED"
    assert fake.media[0]["container"] != first


def test_a_published_container_is_never_published_again(fake, clock):
    made = publisher(clock=clock)
    progress = MemoryProgress()
    receipt = made.publish(post(), progress)
    del progress["media_id"]  # as if the answer of media_publish had been lost

    again = made.publish(post(), progress)

    assert again == receipt
    assert len(fake.media) == 1
    assert [p for m, p, _f in fake.requests if p.endswith("media_publish")] == [
        "/v24.0/me/media_publish"]


# -- crashes ---------------------------------------------------------------------------------


class CrashingProgress(MemoryProgress):
    """Dies (as a killed process) when it is asked to save ``key``, ``after`` times."""

    def __init__(self, key: str, after: int = 1, **values):
        super().__init__(**values)
        self.key, self.after = key, after

    def save(self, **values):
        if self.key in values:
            self.after -= 1
            if self.after == 0:
                raise Crash(f"killed before saving {self.key}")
        super().save(**values)


def test_a_crash_between_media_publish_and_the_record_never_posts_twice(fake, clock):
    crashing = CrashingProgress("media_id")
    with pytest.raises(Crash):
        publisher(clock=clock).publish(post(), crashing)
    assert "media_id" not in crashing
    progress = MemoryProgress(crashing)

    found = publisher(clock=clock).reconcile(post(), progress)

    [media] = fake.media
    assert found == Receipt(media["id"], media["permalink"])
    assert progress["media_id"] == media["id"]
    # A retry after that finds the post too, and publishes nothing.
    assert publisher(clock=clock).publish(post(), progress) == found
    assert len(fake.media) == 1


def test_reconcile_says_certainly_not_posted_for_a_container_never_published(fake, clock):
    made = publisher(clock=clock)
    assert made.reconcile(post(), MemoryProgress()) is None
    progress = MemoryProgress()
    made._create(post(), "image", progress)
    assert made.reconcile(post(), progress) is None


def test_reconcile_that_cannot_ask_or_cannot_tell_raises_outcome_unknown(fake, clock):
    made = publisher(clock=clock)
    progress = MemoryProgress()
    receipt = made.publish(post(), progress)
    fake.fail_next("server_error")
    with pytest.raises(OutcomeUnknown):
        made.reconcile(post(), MemoryProgress(container=progress["container"]))
    # Two published media with the same caption and no time to choose: a person decides.
    fake.media.append({**fake.media[0], "id": "18000000000009999",
                       "permalink": "https://www.instagram.com/p/OTHER/"})
    with pytest.raises(OutcomeUnknown, match="cannot be told apart"):
        made.reconcile(post(), MemoryProgress(container=progress["container"]))
    assert made.reconcile(post(), progress) == receipt  # by the saved media id


def test_a_crash_in_the_middle_of_a_carousel_resumes_with_the_children_it_has(fake, clock):
    items = (image("a.jpg"), image("b.jpg"), image("c.jpg"), image("d.jpg"))
    crashing = CrashingProgress("children", after=2)
    with pytest.raises(Crash):
        publisher(clock=clock).publish(post(*items), crashing)
    # The second child was made on the platform, but the process died before saving it.
    assert crashing["children"] == [next(iter(fake.containers)), None, None, None]
    progress = MemoryProgress(crashing)

    publisher(clock=clock).publish(post(*items), progress)

    [media] = fake.media
    kept = next(iter(fake.containers))
    assert media["children"][0] == kept  # the saved child, reused
    assert len(media["children"]) == 4
    urls = [fake.containers[c]["fields"]["image_url"] for c in media["children"]]
    assert urls == [m.url for m in items]  # in the post's order
    # Five item containers in all: the unsaved one is left to expire, invisible.
    assert sum(1 for c in fake.containers.values()
               if c["fields"].get("is_carousel_item")) == 5


def test_a_carousel_child_that_expired_is_made_again(fake, clock):
    items = (image("a.jpg"), image("b.jpg"))
    made = publisher(clock=clock)
    progress = MemoryProgress()
    first = str(made.graph.post("me/media", data={"image_url": items[0].url,
                                                   "is_carousel_item": "true"})["id"])
    progress.save(children=[first, None])
    fake.expire(first)
    made.publish(post(*items), progress)
    assert first not in fake.media[0]["children"]


# -- the publishing limit --------------------------------------------------------------------


def test_a_used_up_limit_fails_before_any_container_and_says_when_it_frees(fake, clock):
    frees = clock() + dt.timedelta(hours=3, minutes=20)
    fake.fill_quota(frees)
    with pytest.raises(RateLimited) as raised:
        publisher(clock=clock).publish(post(), MemoryProgress())
    assert raised.value.reset_at == frees
    assert frees.isoformat() in str(raised.value)
    assert "50 of its 50 posts" in str(raised.value)
    assert not [p for m, p, _f in fake.requests if m == "POST"]


def test_the_limit_reached_at_media_publish_is_a_rate_limit_with_its_reset(fake, clock):
    made = publisher(clock=clock)
    progress = MemoryProgress()
    container = made._create(post(), "image", progress)
    fake.quota_total = 0  # used up between the limit read and media_publish
    made._check_quota = lambda: None  # type: ignore[method-assign]
    with pytest.raises(RateLimited) as raised:
        made.publish(post(), progress)
    # No post of the account is in the window's list: the whole window from now.
    assert raised.value.reset_at == clock() + dt.timedelta(hours=24)
    assert "limit of posts per 24 hours" in str(raised.value)
    assert progress["container"] == container  # kept: it is published when the window frees


# -- errors at the wire ----------------------------------------------------------------------


def graph_error(code, subcode=None, message="Something failed", **extra):
    error = {"message": message, "type": "OAuthException", "code": code,
             "fbtrace_id": "AbCdFakeTrace", **extra}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


@pytest.fixture
def api():
    with responses.RequestsMock() as mock:
        mock.get(f"{IG}/me/content_publishing_limit",
                 json={"data": [{"quota_usage": 3, "config": {"quota_total": 50,
                                                              "quota_duration": 86400}}]})
        yield mock


@pytest.mark.parametrize(("status", "body", "error"), [
    (400, graph_error(190, 463, "Error validating access token: Session has expired"),
     AuthenticationFailed),
    (401, {}, AuthenticationFailed),
    (403, graph_error(10, message="Application does not have permission for this action"),
     AuthenticationFailed),
    (400, graph_error(200, message="Permissions error"), AuthenticationFailed),
    (400, graph_error(100, 2207010, "Invalid parameter",
                      error_user_msg="The caption is too long."), ContentRejected),
    (400, graph_error(4, 2207051, "Action is blocked"), ContentRejected),
    (400, graph_error(9004, 2207052, "Media download has failed.",
                      error_user_msg="The media could not be fetched from this URI"),
     ContentRejected),
    (500, graph_error(2, message="Service temporarily unavailable", is_transient=True),
     PlatformError),
    (400, graph_error(-1, 2207001, "Instagram server error"), PlatformError),
    (502, None, PlatformError),
])
def test_answers_to_creating_a_container_are_classified(api, clock, status, body, error):
    if body is None:
        api.post(f"{IG}/me/media", status=status, body="<html>Bad Gateway</html>")
    else:
        api.post(f"{IG}/me/media", status=status, json=body)
    with pytest.raises(error) as raised:
        publisher(clock=clock).publish(post(), MemoryProgress())
    assert raised.value.channel == "ig"
    assert type(raised.value) is error or issubclass(type(raised.value), error)
    assert TOKEN not in str(raised.value)


def test_throttling_says_when_it_ends_from_the_usage_header(api, clock):
    usage = {"17841400000000001": [{"type": "instagram", "call_count": 100,
                                    "total_cputime": 30, "total_time": 40,
                                    "estimated_time_to_regain_access": 12}]}
    api.post(f"{IG}/me/media", status=400, json=graph_error(32, message="Page request limit"),
             headers={"X-Business-Use-Case-Usage": json.dumps(usage)})
    with pytest.raises(RateLimited) as raised:
        publisher(clock=clock).publish(post(), MemoryProgress())
    assert raised.value.reset_at == clock() + dt.timedelta(minutes=12)


def test_the_media_url_named_when_instagram_cannot_fetch_it(fake, clock):
    # The media host answers on a campus address the internet cannot reach.
    private = image("poster.jpg", url="http://10.20.0.5/humas/poster.jpg")
    with pytest.raises(ContentRejected) as raised:
        publisher(clock=clock).publish(post(private), MemoryProgress())
    assert "media[0]" in str(raised.value)
    assert "http://10.20.0.5/humas/poster.jpg" in str(raised.value)
    assert fake.containers == {}


@pytest.mark.parametrize(("failure", "error"), [
    (requests.ConnectTimeout("connect timed out"), PlatformError),
    (requests.ReadTimeout("read timed out"), PlatformError),
    (requests.ConnectionError("reset by peer"), PlatformError),
])
def test_a_lost_answer_to_creating_a_container_is_harmless(api, clock, failure, error):
    api.post(f"{IG}/me/media", body=failure)
    with pytest.raises(error):
        publisher(clock=clock).publish(post(), MemoryProgress())


@pytest.mark.parametrize(("status", "body", "error"), [
    (None, requests.ReadTimeout("read timed out"), OutcomeUnknown),
    (None, requests.ConnectionError("reset by peer"), OutcomeUnknown),
    (None, requests.ConnectTimeout("connect timed out"), PlatformError),
    (500, graph_error(1, message="An unknown error occurred", is_transient=True),
     OutcomeUnknown),
    (400, graph_error(9007, 2207027, "Media ID is not available"), PlatformError),
    (400, graph_error(-2, 2207020, "The media has expired"), PlatformError),
])
def test_answers_to_media_publish_are_classified(api, clock, status, body, error):
    api.post(f"{IG}/me/media", json={"id": "17900000000000001"})
    api.get(f"{IG}/17900000000000001", json={"id": "17900000000000001",
                                             "status_code": "FINISHED"})
    if status is None:
        api.post(f"{IG}/me/media_publish", body=body)
    else:
        api.post(f"{IG}/me/media_publish", status=status, json=body)
    progress = MemoryProgress()
    with pytest.raises(error):
        publisher(clock=clock).publish(post(), progress)
    if "expired" in str(body):
        assert progress["container"] is None  # made again on the next try
    else:
        assert progress["container"] == "17900000000000001"  # saved before the risky call


def test_the_limit_read_refused_is_an_authentication_failure(clock):
    with responses.RequestsMock() as mock:
        mock.get(f"{IG}/me/content_publishing_limit", status=400,
                 json=graph_error(190, message="Invalid OAuth access token"))
        with pytest.raises(AuthenticationFailed, match="renew it"):
            publisher(clock=clock).publish(post(), MemoryProgress())


# -- check and tokens ------------------------------------------------------------------------


def test_check_reads_the_account_and_the_publishing_permission_and_posts_nothing(fake, clock):
    publisher({"account": "@fisipub", "refresh": "off"}, clock=clock).check()
    assert calls(fake) == [("GET", "me"), ("GET", "me/content_publishing_limit")]
    assert fake.media == []
    assert fake.containers == {}


def test_check_refuses_a_token_of_another_account(fake, clock):
    with pytest.raises(AuthenticationFailed, match=r"@fisipub.*channel is for @feb_ub"):
        publisher({"account": "feb_ub"}, clock=clock).check()


def test_check_refuses_a_revoked_token(fake, clock):
    with pytest.raises(AuthenticationFailed):
        publisher(clock=clock, token="ig-fake-token-revoked-0000").check()


def test_check_with_facebook_login_reads_the_token_permissions(clock):
    with InstagramFake(TOKEN, login="facebook", clock=clock,
                       permissions=("instagram_basic",)) as fake:
        made = publisher({"login": "facebook", "user_id": fake.user_id}, clock=clock)
        with pytest.raises(AuthenticationFailed,
                           match="instagram_content_publish, pages_read_engagement"):
            made.check()
        fake.permissions = ("instagram_basic", "instagram_content_publish",
                            "pages_read_engagement")
        made.check()


def test_check_renews_an_instagram_login_token_where_the_source_keeps_it(fake, clock):
    renewed: list = []
    made = publisher(clock=clock, writable=True, renewed=renewed)
    made.check()
    [new] = fake.refreshed
    assert renewed == [("token", new, clock() + dt.timedelta(seconds=5183944))]
    refresh = [c.request.url for c in fake.mock.calls
               if "refresh_access_token" in c.request.url]
    assert refresh[0].startswith("https://graph.instagram.com/refresh_access_token?")
    made.publish(post(), MemoryProgress())  # with the renewed token
    assert fake.requests[-1][1].startswith("/v24.0/")


def test_check_warns_where_the_token_cannot_be_kept_and_does_not_renew_it(fake, clock, caplog):
    renewed: list = []
    publisher(clock=clock, writable=False, renewed=renewed).check()
    assert renewed == []
    assert fake.refreshed == []
    assert "cannot keep a renewed one" in caplog.text
    assert TOKEN not in caplog.text


# -- settings --------------------------------------------------------------------------------


def test_settings_take_defaults_and_refuse_what_they_cannot_use():
    assert prepare_settings({}) == {
        "login": "instagram", "user_id": "me", "base_url": "https://graph.instagram.com",
        "api_version": "v24.0", "timeout": 10, "poll_interval": 2, "poll_timeout": 300,
        "max_hashtags": 5, "refresh": "auto"}
    assert prepare_settings({"login": "facebook", "user_id": "178414"})["base_url"] == (
        "https://graph.facebook.com")
    for bad, word in [({"login": "twitter"}, "login"), ({"login": "facebook"}, "user_id"),
                      ({"user_id": "fisipub"}, "numeric id"), ({"api_version": "24"}, "v24.0"),
                      ({"timeout": "10"}, "seconds"), ({"max_hashtags": 31}, "0 to 30"),
                      ({"refresh": "yes"}, "auto"), ({"acount": "fisipub"}, "acount")]:
        with pytest.raises(ConfigurationError, match=word):
            prepare_settings(bad)
