"""The Facebook publisher at the wire: facebook-sdk's real code sends every request to
the fake Graph API (a real HTTP server on 127.0.0.1), which answers as Facebook
documents, errors included. Each test states the rule it checks."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
from pathlib import Path
from typing import Any

import facebook
import pytest
import requests
from humasflow import (
    AuthenticationFailed,
    ChannelConfig,
    ConfigurationError,
    ContentRejected,
    Media,
    OutcomeUnknown,
    PlatformError,
    Post,
    PublisherContext,
    RateLimited,
    Receipt,
    i18n,
    plugins,
)
from humasflow.mediastore import MediaStore
from humasflow.testing import MemoryProgress, sample_image, sample_video, staffed_office
from humasflow.testing.faults import Crash

from humasflow_facebook import (
    DEFAULT_VERSION,
    MAX_MESSAGE,
    PUBLISHER,
    FacebookPublisher,
    _marker,
)
from humasflow_facebook._wire import GraphSession
from humasflow_facebook.fake import FAKE_PAGE_TOKEN, FakeGraphAPI

KEY = "hf-0123456789abcdef0123456789abcdef"
USER_TOKEN = "fake-user-token-2222"
NOW = dt.datetime(2026, 1, 5, 2, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def graph():
    with FakeGraphAPI(user_tokens=(USER_TOKEN,)) as fake:
        yield fake


@pytest.fixture
def store(tmp_path: Path) -> MediaStore:
    return MediaStore(tmp_path / "media")


class Expiries(list[tuple[str, dt.datetime]]):
    def __call__(self, name: str, at: dt.datetime) -> None:
        self.append((name, at))


@pytest.fixture
def expiries() -> Expiries:
    return Expiries()


@pytest.fixture
def make(graph: FakeGraphAPI, store: MediaStore, expiries: Expiries):
    def make(token: str = FAKE_PAGE_TOKEN, credentials: dict[str, str] | None = None,
             **settings: Any) -> FacebookPublisher:
        named = {"page_token": "FISIP_FB_PAGE_TOKEN"}
        values = {"page_token": token, **(credentials or {})}
        for name in credentials or {}:
            named[name] = f"FISIP_FB_{name.upper()}"
        channel = ChannelConfig(name="facebook", publisher=PUBLISHER, settings={
            "page_id": graph.page_id, "graph_url": graph.url, "video_url": graph.url,
            **settings}, credentials=named)
        context = PublisherContext(credentials=values, session=requests.Session(),
                                   media=store, channel="facebook", clock=lambda: NOW,
                                   on_expiry=expiries)
        return FacebookPublisher(channel, context)
    return make


@pytest.fixture
def publisher(make) -> FacebookPublisher:
    return make()


def stored(store: MediaStore, path: str, alt: str = "") -> Media:
    with open(path, "rb") as f:
        info = store.add(f, source=path)
    return Media(path, alt=alt, sha256=info.sha256, size=info.size, mime=info.mime,
                 kind=info.kind, width=info.width, height=info.height,
                 duration=info.duration)


def text_post(text: str = "Seminar nasional FISIP UB, 12 Januari.", **kw: Any) -> Post:
    kw.setdefault("idempotency_key", KEY)
    return Post(item_id=7, channel="facebook", title="Seminar", text=text, **kw)


def last(graph: FakeGraphAPI, method: str | None = None) -> tuple[str, str, dict[str, str]]:
    calls = [c for c in graph.requests if method is None or c[0] == method]
    return calls[-1]


# -- the distribution ------------------------------------------------------------------------


def test_the_entry_point_registers_the_publisher():
    """Installed, humasflow finds it through its entry point `facebook`."""
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="humasflow")}
    assert names.get(PUBLISHER) == "humasflow_facebook"
    assert plugins.publisher_factories()[PUBLISHER] is FacebookPublisher


# -- the Graph API version ---------------------------------------------------------------------


def test_facebook_sdk_alone_refuses_a_current_version():
    """The gap this plugin fills: facebook-sdk 3.1.0's constructor takes versions up to
    3.1 only."""
    with pytest.raises(facebook.GraphAPIError):
        facebook.GraphAPI(access_token="x", version="24.0")


def test_the_default_version_is_current_and_in_the_path(publisher, graph):
    assert DEFAULT_VERSION == "v25.0"
    publisher.publish(text_post(), MemoryProgress())
    assert graph.versions == ["v25.0"]
    assert graph.requests[0][1] == f"/v25.0/{graph.page_id}/feed"


@pytest.mark.parametrize(("setting", "used"), [("v26.0", "v26.0"), ("24.0", "v24.0"),
                                                ("v24.0", "v24.0")])
def test_the_version_setting_is_used_in_every_path(make, graph, setting, used):
    publisher = make(graph_version=setting)
    publisher.check()
    publisher.publish(text_post(), MemoryProgress())
    assert set(graph.versions) == {used}
    assert len(graph.versions) == 3  # the Page, debug_token, the feed post


@pytest.mark.parametrize("bad", ["latest", "v24", "24", "v24.0.1", ""])
def test_a_malformed_version_is_refused_when_the_channel_is_configured(bad):
    with pytest.raises(ConfigurationError, match="graph_version"):
        FacebookPublisher.prepare_settings({"page_id": "104", "graph_version": bad})


@pytest.mark.parametrize(("settings", "word"), [
    ({}, "page_id"), ({"page_id": "fisip"}, "page_id"),
    ({"page_id": "104", "timeout": 0}, "timeout"),
    ({"page_id": "104", "graph_url": "graph.facebook.com"}, "graph_url"),
    ({"page_id": "104", "app_id": "my app"}, "app_id"),
    ({"page_id": "104", "marker": "yes"}, "marker"),
    ({"page_id": "104", "pageid": "104"}, "pageid")])
def test_settings_that_cannot_work_are_refused(settings, word):
    with pytest.raises(ConfigurationError, match=word):
        FacebookPublisher.prepare_settings(settings)


# -- timeouts and the session ----------------------------------------------------------------


def test_every_call_has_a_timeout_and_goes_through_the_core_session(make, store, graph,
                                                                    tmp_path, monkeypatch):
    seen: list[tuple[str, Any]] = []
    original = requests.Session.request

    def request(self, method, url, *args, **kwargs):
        seen.append((url.split("?")[0].rsplit("/", 1)[-1], kwargs.get("timeout")))
        return original(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", request)
    publisher = make(timeout=12, upload_timeout=90)
    photo = stored(store, sample_image(tmp_path / "a.png"))
    publisher.check()
    publisher.publish(text_post(), MemoryProgress())
    publisher.publish(text_post("Foto", media=(photo,)), MemoryProgress())
    publisher.reconcile(text_post(), MemoryProgress(sent_at=NOW.isoformat()))
    assert seen == [(graph.page_id, 12.0), ("debug_token", 12.0), ("feed", 12.0),
                    ("photos", 90.0), ("published_posts", 12.0)]


# -- posting every kind ---------------------------------------------------------------------


def test_a_text_post_goes_to_the_feed_with_its_invisible_marker(publisher, graph):
    progress = MemoryProgress()
    receipt = publisher.publish(text_post(), progress)
    [post] = graph.posts()
    assert receipt == Receipt(post["id"], f"https://www.facebook.com/{graph.page_id}/posts/"
                                          f"{post['id'].split('_')[1]}")
    assert post["kind"] == "feed"
    assert _marker.strip(post["message"]) == "Seminar nasional FISIP UB, 12 Januari."
    assert _marker.find(post["message"]) == KEY
    assert progress["post_id"] == receipt.platform_id  # saved after the call
    assert progress["sent_at"] == NOW.isoformat()      # saved before it


def test_a_text_post_with_a_link(publisher, graph):
    publisher.publish(text_post(link="https://fisip.ub.ac.id/seminar"), MemoryProgress())
    [post] = graph.posts()
    assert post["link"] == "https://fisip.ub.ac.id/seminar"
    assert last(graph)[2]["link"] == "https://fisip.ub.ac.id/seminar"


def test_one_photo_is_uploaded_from_the_media_store_with_its_alt_text(publisher, graph,
                                                                    store, tmp_path):
    photo = stored(store, sample_image(tmp_path / "poster.png"), alt="Poster seminar")
    receipt = publisher.publish(text_post(media=(photo,)), MemoryProgress())
    [post] = graph.posts()
    assert post["kind"] == "photo"
    assert receipt.platform_id == post["id"]
    [uploaded] = graph.photos.values()
    assert uploaded["bytes"] == store.read(photo)
    assert uploaded["alt"] == "Poster seminar"
    assert uploaded["published"] is True
    assert len(graph.requests) == 1


def test_one_photo_at_a_public_url_is_fetched_by_facebook(publisher, graph):
    photo = Media("https://media.fisip.example/poster.jpg", passthrough=True)
    publisher.publish(text_post(media=(photo,)), MemoryProgress())
    [uploaded] = graph.photos.values()
    assert uploaded["url"] == "https://media.fisip.example/poster.jpg"
    assert uploaded["bytes"] == b""


def test_several_photos_are_uploaded_unpublished_then_attached_to_one_feed_post(
        publisher, graph, store, tmp_path):
    photos = tuple(stored(store, sample_image(tmp_path / f"p{i}.png", size=(8 + i, 6)),
                          alt=f"Foto {i}") for i in range(3))
    saves: list[dict[str, Any]] = []

    class Recording(MemoryProgress):
        def save(self, **values: Any) -> None:
            saves.append(values)
            super().save(**values)

    progress = Recording()
    receipt = publisher.publish(text_post("Wisuda", media=photos), progress)
    assert [c[1].rsplit("/", 1)[1] for c in graph.requests] == ["photos"] * 3 + ["feed"]
    assert all(c[2]["published"] == "false" for c in graph.requests[:3])
    ids = progress["photo_ids"]
    feed = graph.requests[3][2]
    assert [json.loads(feed[f"attached_media[{i}]"])["media_fbid"] for i in range(3)] == ids
    [post] = graph.posts()
    assert post["kind"] == "album"
    assert post["photos"] == ids
    assert receipt.platform_id == post["id"]
    # Each upload id is saved before the next call; sent_at before the feed call.
    assert [list(s) for s in saves] == [["photo_ids"]] * 3 + [["sent_at", "kind"],
                                                              ["post_id", "url"]]
    assert [len(s["photo_ids"]) for s in saves[:3]] == [1, 2, 3]


def test_an_album_resumes_with_the_photos_saved_before_a_crash(publisher, graph, store,
                                                               tmp_path):
    photos = tuple(stored(store, sample_image(tmp_path / f"p{i}.png", size=(8 + i, 6)))
                   for i in range(3))

    class CrashAfterTwo(MemoryProgress):
        def save(self, **values: Any) -> None:
            super().save(**values)
            if len(self.get("photo_ids", [])) == 2:
                raise Crash("the process died after the second upload")

    crashed = CrashAfterTwo()
    with pytest.raises(Crash):
        publisher.publish(text_post("Wisuda", media=photos), crashed)
    assert graph.posts() == []  # unpublished uploads are invisible
    graph.requests.clear()
    progress = MemoryProgress(crashed)
    publisher.publish(text_post("Wisuda", media=photos), progress)
    assert [c[1].rsplit("/", 1)[1] for c in graph.requests] == ["photos", "feed"]
    assert progress["photo_ids"][:2] == crashed["photo_ids"]
    [post] = graph.posts()
    assert post["photos"] == progress["photo_ids"]


def test_a_video_goes_to_the_video_host_with_title_and_description(make, graph, store,
                                                                    tmp_path):
    publisher = make()
    video = stored(store, sample_video(tmp_path / "profil.mp4"))
    post = text_post("Profil FISIP UB", media=(video,), options={"title": "Profil 2026"})
    receipt = publisher.publish(post, MemoryProgress())
    [posted] = graph.posts()
    assert posted["kind"] == "video"
    assert posted["title"] == "Profil 2026"
    assert _marker.strip(posted["description"]) == "Profil FISIP UB"
    assert posted["size"] == video.size
    assert receipt == Receipt(posted["id"],
                              f"https://www.facebook.com/{graph.page_id}/videos/{posted['id']}")


def test_the_video_host_is_its_own_setting():
    seen: list[str] = []

    class Session:
        def request(self, method: str, url: str, **kwargs: Any) -> Any:
            seen.append(url)
            response = requests.Response()
            response.status_code = 200
            response.headers["content-type"] = "application/json"
            response._content = b'{"id": "1"}'
            return response

    wire = GraphSession(Session(), graph_url="https://graph.example.invalid/",  # type: ignore[arg-type]
                        video_url="https://video.example.invalid", timeout=5,
                        upload_timeout=50)
    api = facebook.GraphAPI(access_token="x", session=wire)
    api.version = "v25.0"
    api.get_object("104")
    with wire.video_host():
        api.request("v25.0/104/videos", post_args={"title": "t"})
    assert seen == ["https://graph.example.invalid/v25.0/104",
                    "https://video.example.invalid/v25.0/104/videos"]


def test_a_large_video_goes_through_the_resumable_upload_api(make, graph, store, tmp_path):
    publisher = make(app_id=graph.app_id, resumable_over=100,
                     credentials={"user_token": USER_TOKEN})
    video = stored(store, sample_video(tmp_path / "profil.mp4"))
    assert video.size > 100
    progress = MemoryProgress()
    receipt = publisher.publish(text_post("Profil", media=(video,)), progress)
    paths = [c[1] for c in graph.requests]
    assert paths[0] == f"/v25.0/{graph.app_id}/uploads"
    assert paths[1].startswith("/v25.0/upload:")
    assert paths[2] == f"/v25.0/{graph.page_id}/videos"
    assert graph.requests[2][2]["fbuploader_video_file_chunk"] == progress["video_handle"]
    [upload] = graph.uploads.values()
    assert upload["data"] == store.read(video)
    assert progress["upload_session"].startswith("upload:")
    assert receipt.platform_id == graph.posts()[0]["id"]


def test_a_large_video_resumes_at_the_offset_facebook_reports(make, graph, store, tmp_path):
    publisher = make(app_id=graph.app_id, resumable_over=100,
                     credentials={"user_token": USER_TOKEN})
    video = stored(store, sample_video(tmp_path / "profil.mp4"))
    data = store.read(video)
    graph.uploads["upload:77"] = {"length": len(data), "type": "video/mp4",
                                  "data": data[:40]}
    progress = MemoryProgress(upload_session="upload:77")
    publisher.publish(text_post("Profil", media=(video,)), progress)
    assert [c[0] for c in graph.requests[:2]] == ["GET", "POST"]
    assert graph.uploads["upload:77"]["data"] == data


# -- errors -------------------------------------------------------------------------------------


def graph_error(code: int, message: str, subcode: int | None = None, **extra: Any) -> dict:
    error = {"message": message, "type": "OAuthException", "code": code,
             "fbtrace_id": "AXyZFakeTrace123", **extra}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


@pytest.mark.parametrize(("subcode", "why"), [
    (458, "no longer installed"), (459, "checkpoint"), (460, "changed their Facebook "
                                                             "password"),
    (463, "expired"), (464, "not confirmed"), (467, "no longer valid")])
def test_a_refused_token_says_renew_the_page_token_and_why(publisher, graph, subcode, why):
    graph.answer_next(400, graph_error(190, "Error validating access token", subcode))
    with pytest.raises(AuthenticationFailed) as raised:
        publisher.publish(text_post(), MemoryProgress())
    text = str(raised.value)
    assert "Renew the Page token" in text
    assert why in text
    assert "AXyZFakeTrace123" in text
    assert raised.value.fbtrace_id == "AXyZFakeTrace123"
    assert raised.value.credential == "page_token"
    assert graph.posts() == []


@pytest.mark.parametrize(("code", "message", "named"), [
    (200, "(#200) Requires pages_manage_posts permission to manage the object",
     "pages_manage_posts"),
    (10, "(#10) This endpoint requires the 'pages_read_engagement' permission",
     "pages_read_engagement"),
    (230, "(#230) Requires pages_messaging permission", "pages_messaging")])
def test_a_missing_permission_is_named(publisher, graph, code, message, named):
    graph.answer_next(403, graph_error(code, message))
    with pytest.raises(AuthenticationFailed) as raised:
        publisher.publish(text_post(), MemoryProgress())
    assert f"the token lacks the permission {named}" in str(raised.value)


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80001, 80014])
def test_throttling_waits_as_the_usage_header_says(publisher, graph, code):
    usage = {graph.page_id: [{"type": "pages", "call_count": 100, "total_cputime": 30,
                              "total_time": 40, "estimated_time_to_regain_access": 7}]}
    graph.answer_next(400, graph_error(code, "(#32) Page request limit reached"), headers={
        "X-Business-Use-Case-Usage": json.dumps(usage), "Date": "Mon, 05 Jan 2026 03:00:00 GMT",
        "X-App-Usage": json.dumps({"call_count": 100})})
    with pytest.raises(RateLimited) as raised:
        publisher.publish(text_post(), MemoryProgress())
    assert raised.value.reset_at == dt.datetime(2026, 1, 5, 3, 7, tzinfo=dt.timezone.utc)


def test_throttling_without_a_wait_has_no_reset_time(publisher, graph):
    graph.answer_next(400, graph_error(4, "(#4) Application request limit reached"),
                      headers={"X-App-Usage": json.dumps({"call_count": 100,
                                                          "total_time": 20})})
    with pytest.raises(RateLimited) as raised:
        publisher.publish(text_post(), MemoryProgress())
    assert raised.value.reset_at is None
    assert "growing wait" in str(raised.value)


@pytest.mark.parametrize("code", [1, 2])
def test_codes_1_and_2_are_transient(publisher, graph, code):
    graph.answer_next(500, graph_error(code, "An unknown error occurred", is_transient=True))
    with pytest.raises(PlatformError):
        publisher.publish(text_post(), MemoryProgress())


def test_a_non_json_502_is_transient_not_a_confusing_graph_error(publisher, graph):
    graph.answer_next(502, "<html><body>502 Bad Gateway</body></html>",
                      content_type="text/html")
    with pytest.raises(PlatformError) as raised:
        publisher.publish(text_post(), MemoryProgress())
    assert raised.value.code == 502
    assert "HTTP 502" in str(raised.value)
    assert not isinstance(raised.value.__cause__ or raised.value.__context__,
                          facebook.GraphAPIError)


def test_an_error_status_with_json_but_no_graph_error_is_read_by_its_status(publisher, graph):
    graph.answer_next(503, {"status": "unavailable"})
    with pytest.raises(PlatformError) as raised:
        publisher.publish(text_post(), MemoryProgress())
    assert raised.value.code == 503


def test_a_first_duplicate_is_refused(publisher, graph):
    graph.answer_next(400, graph_error(506, "(#506) Duplicate status message"))
    with pytest.raises(ContentRejected, match="duplicate"):
        publisher.publish(text_post(), MemoryProgress())


def test_other_refusals_are_content_rejected_with_the_user_message(publisher, graph):
    graph.answer_next(400, graph_error(368, "The action attempted has been deemed abusive",
                                       error_user_msg="Postingan ini melanggar standar."))
    with pytest.raises(ContentRejected, match="melanggar standar"):
        publisher.publish(text_post(), MemoryProgress())


def test_a_connect_timeout_sent_nothing(publisher, monkeypatch):
    def refuse(self, *args, **kwargs):
        raise requests.ConnectTimeout("connect timed out")

    monkeypatch.setattr(requests.Session, "request", refuse)
    with pytest.raises(PlatformError, match="nothing was sent"):
        publisher.publish(text_post(), MemoryProgress())


def test_a_timeout_after_the_post_was_created_is_unknown_and_reconcile_finds_it(make, graph):
    publisher = make(timeout=0.3)
    graph.delay_next(1.0)
    progress = MemoryProgress()
    with pytest.raises(OutcomeUnknown) as raised:
        publisher.publish(text_post(), progress)
    assert raised.value.__context__ is None  # no raw requests exception behind it
    [post] = graph.posts()
    assert publisher.reconcile(text_post(), progress) == Receipt(post["id"], post["url"])


def test_no_error_shows_the_token(make, monkeypatch):
    token = "fake-page-token-secret-9999"
    publisher = make(token=token)

    def drop(self, method, url, *args, **kwargs):
        raise requests.ConnectionError(f"Max retries exceeded with url: {url}?"
                                       f"access_token={token}")

    monkeypatch.setattr(requests.Session, "request", drop)
    with pytest.raises(OutcomeUnknown) as raised:
        publisher.publish(text_post(), MemoryProgress())
    for text in (str(raised.value), repr(raised.value), repr(vars(raised.value)),
                 repr(publisher)):
        assert token not in text
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None


# -- idempotency and reconcile --------------------------------------------------------------------


def test_a_retry_after_a_lost_answer_looks_first_and_does_not_post_again(publisher, graph):
    progress = MemoryProgress()
    receipt = publisher.publish(text_post(), progress)
    del progress["post_id"], progress["url"]   # as if the answer had been lost
    graph.requests.clear()
    assert publisher.publish(text_post(), progress) == receipt
    assert [c[1].rsplit("/", 1)[1] for c in graph.requests] == ["published_posts"]
    assert len(graph.posts()) == 1


def test_a_duplicate_after_an_earlier_attempt_is_this_post(publisher, graph):
    progress = MemoryProgress()
    receipt = publisher.publish(text_post(), progress)
    del progress["post_id"], progress["url"]
    graph.answer_next(200, {"data": []})  # the lookup lags: the post is not listed yet
    assert publisher.publish(text_post(), progress) == receipt  # 506, then found
    assert len(graph.posts()) == 1


def test_reconcile_without_a_sent_public_call_answers_absent_without_asking(publisher, graph):
    assert publisher.reconcile(text_post(), MemoryProgress(photo_ids=["1"])) is None
    assert graph.requests == []


def test_reconcile_finds_only_a_post_with_this_items_marker(publisher, graph):
    other = text_post(idempotency_key="hf-ffffffffffffffffffffffffffffffff")
    publisher.publish(other, MemoryProgress())           # another store's identical text
    progress = MemoryProgress(sent_at=NOW.isoformat(), kind="text")
    # The post on the Page carries another key: it is not this one, which is absent.
    assert publisher.reconcile(text_post(), progress) is None
    mine = publisher.publish(text_post(), MemoryProgress())
    assert publisher.reconcile(text_post(), progress) == mine


def test_reconcile_answers_absent_when_the_page_has_no_such_post(publisher, graph):
    progress = MemoryProgress(sent_at=NOW.isoformat(), kind="text")
    assert publisher.reconcile(text_post(), progress) is None


def test_reconcile_of_a_video_reads_the_pages_videos(publisher, graph, store, tmp_path):
    video = stored(store, sample_video(tmp_path / "v.mp4"))
    progress = MemoryProgress()
    receipt = publisher.publish(text_post("Profil", media=(video,)), progress)
    del progress["post_id"]
    graph.requests.clear()
    assert publisher.reconcile(text_post("Profil", media=(video,)), progress) == receipt
    assert graph.requests[0][1].endswith("/videos")


def test_a_platform_that_drops_the_marker_leaves_the_decision_to_a_person(make, store):
    with FakeGraphAPI(strip_markers=True) as stripping:
        publisher = make(graph_url=stripping.url, video_url=stripping.url,
                         page_id=stripping.page_id)
        progress = MemoryProgress()
        publisher.publish(text_post(), progress)
        del progress["post_id"]
        with pytest.raises(OutcomeUnknown, match="confirm"):
            publisher.reconcile(text_post(), progress)


def test_with_the_marker_off_reconcile_matches_the_exact_text(make, graph):
    publisher = make(marker=False)
    progress = MemoryProgress()
    receipt = publisher.publish(text_post(), progress)
    assert graph.posts()[0]["message"] == text_post().text
    del progress["post_id"]
    assert publisher.reconcile(text_post(), progress) == receipt


def test_reconcile_that_cannot_ask_does_not_answer(publisher, graph):
    graph.answer_next(502, "Bad Gateway", content_type="text/plain")
    progress = MemoryProgress(sent_at=NOW.isoformat(), kind="text")
    with pytest.raises(PlatformError):
        publisher.reconcile(text_post(), progress)


def test_reconcile_reads_older_pages_of_posts(publisher, graph):
    progress = MemoryProgress()
    receipt = publisher.publish(text_post(), progress)
    for i in range(120):
        publisher.publish(text_post(f"Kabar {i}", idempotency_key=f"hf-{i:032x}"),
                          MemoryProgress())
    del progress["post_id"]
    assert publisher.reconcile(text_post(), progress) == receipt


# -- check --------------------------------------------------------------------------------------


def test_check_reads_the_page_and_the_token_and_posts_nothing(publisher, graph, expiries):
    said = publisher.check()
    assert said == (f"Page 'FISIP Universitas Brawijaya' ({graph.page_id}); the token does "
                    "not expire; permissions: pages_manage_posts, pages_read_engagement, "
                    "pages_show_list")
    assert graph.posts() == []
    assert expiries == []


def test_check_reports_when_the_token_expires(make, graph, expiries):
    graph.expires_at = 1_780_000_000
    assert "the token expires at 2026-05-28" in make().check()
    assert expiries == [("page_token", dt.datetime.fromtimestamp(1_780_000_000,
                                                                 dt.timezone.utc))]


def test_check_names_a_missing_permission(make, graph):
    graph.scopes = ["pages_show_list", "pages_read_engagement"]
    with pytest.raises(AuthenticationFailed, match="lacks the permission pages_manage_posts"):
        make().check()


def test_check_when_debug_token_is_refused_still_reads_the_page(make, graph):
    graph.debug_token = False
    assert "could not be read" in make().check()


def test_check_refuses_a_bad_token(make):
    with pytest.raises(AuthenticationFailed, match="Renew the Page token"):
        make(token="fake-page-token-revoked-1111").check()


def test_check_refuses_a_user_token_and_another_pages_token(make, graph, monkeypatch):
    publisher = make()
    with pytest.raises(AuthenticationFailed, match="USER token"):
        publisher._judge_token("FISIP", {"is_valid": True, "type": "USER"})
    with pytest.raises(AuthenticationFailed, match="belongs to Page 999"):
        publisher._judge_token("FISIP", {"is_valid": True, "type": "PAGE",
                                         "profile_id": "999"})
    with pytest.raises(AuthenticationFailed, match="Renew the Page token"):
        publisher._judge_token("FISIP", {"is_valid": False,
                                         "error": {"subcode": 460, "message": "changed"}})


def test_no_token_is_a_clear_error(make):
    with pytest.raises(AuthenticationFailed, match="page_token"):
        make(token="").publish(text_post(), MemoryProgress())


# -- validation (no network) ----------------------------------------------------------------------


def rules(publisher: FacebookPublisher, post: Post) -> set[tuple[str, str]]:
    return {(p.field, p.rule) for p in publisher.validate(post)}


def fake_media(kind: str, mime: str, size: int, source: str = "f") -> Media:
    return Media(source, kind=kind, mime=mime, size=size, sha256="0" * 64)


def test_validation_needs_no_network(publisher, graph, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("validate() made a request")

    monkeypatch.setattr(requests.Session, "request", refuse)
    assert publisher.validate(text_post()) == []
    assert graph.requests == []


@pytest.mark.parametrize(("post", "expected"), [
    (text_post("x" * (MAX_MESSAGE - 64)), {("text", "max_length")}),
    (text_post("x" * (MAX_MESSAGE - 65)), set()),
    (text_post(""), {("text", "required")}),
    (text_post(link="fisip.ub.ac.id/seminar"), {("link", "link_form")}),
    (text_post(link="https://fisip.ub.ac.id/a b"), {("link", "link_form")}),
    (text_post(link="https://fisip.ub.ac.id", media=(fake_media("image", "image/png", 10),)),
     {("link", "link_with_media")}),
    (text_post(media=(fake_media("image", "image/png", 10),
                      fake_media("video", "video/mp4", 10))),
     {("media[1]", "video_with_photos")}),
    (text_post(media=(fake_media("video", "video/mp4", 10),) * 2), {("media", "max_count")}),
    (text_post(media=(fake_media("image", "image/jpeg", 10),) * 11), {("media", "max_count")}),
    (text_post(media=(fake_media("image", "image/png", 5 * 1024 * 1024),)),
     {("media[0]", "max_bytes")}),
    (text_post(media=(fake_media("video", "video/webm", 10),)), {("media[0]", "media_format")}),
    (text_post(media=(fake_media("video", "video/mp4", 200 * 1024 * 1024),)),
     {("media[0]", "resumable_upload")}),
    (text_post(media=(fake_media("gif", "image/gif", 1000),)), set()),
    (text_post(media=(fake_media("image", "image/webp", 1000),) * 10), set()),
    (text_post(options={"thread": True}), {("options.thread", "option")}),
    (text_post(options={"title": "t" * 256}), {("options.title", "title")}),
])
def test_validation_rules(publisher, post, expected):
    assert rules(publisher, post) == expected


def test_a_large_video_is_valid_once_the_resumable_upload_is_configured(make):
    publisher = make(app_id="987654321", credentials={"user_token": USER_TOKEN})
    big = text_post(media=(fake_media("video", "video/mp4", 200 * 1024 * 1024),))
    assert rules(publisher, big) == set()


def test_the_marker_counts_against_the_length_only_when_it_is_on(make):
    assert rules(make(marker=False), text_post("x" * MAX_MESSAGE)) == set()


# -- translations ------------------------------------------------------------------------------


def test_every_message_has_an_indonesian_translation():
    from humasflow import _catalogs

    package = Path(__file__).parents[1] / "src" / "humasflow_facebook"
    assert _catalogs.missing("id", domain="humasflow_facebook", package_dir=package) == []


def test_a_validation_message_in_indonesian(publisher):
    with i18n.use("id"):
        [problem] = publisher.validate(text_post(link="fisip.ub.ac.id"))
    assert "bukan URL http(s) lengkap" in problem.message


def test_the_package_ships_its_compiled_catalog():
    package = Path(__file__).parents[1] / "src" / "humasflow_facebook"
    assert (package / "locale" / "id" / "LC_MESSAGES" / "humasflow_facebook.mo").is_file()


def test_the_docstring_examples_run():
    import doctest

    import humasflow_facebook._marker as module

    assert doctest.testmod(module).failed == 0


def test_channels_check_prints_the_page_and_the_tokens_expiry(graph, tmp_path):
    """`humasflow channels check` shows what check() read, and warns of the expiry."""
    import humasflow
    from click.testing import CliRunner
    from humasflow.cli import cli

    graph.expires_at = int((dt.datetime.now(dt.timezone.utc)
                            + dt.timedelta(days=3)).timestamp())
    db = tmp_path / "humas.db"
    with humasflow.open(str(db)) as office:
        staffed_office(office)
        office.add_channel("facebook", "facebook", settings={
            "page_id": graph.page_id, "graph_url": graph.url, "video_url": graph.url},
            credentials={"page_token": "FISIP_FB_PAGE_TOKEN"}, by="admin")
    result = CliRunner().invoke(cli, ["--db", str(db), "channels", "check"],
                                obj={"environ": {"FISIP_FB_PAGE_TOKEN": FAKE_PAGE_TOKEN}})
    assert result.exit_code == 0, result.output
    assert (f"facebook (facebook): OK (Page 'FISIP Universitas Brawijaya' ({graph.page_id}); "
            "the token expires at ") in result.output
    assert "WARNING the credential 'page_token' (FISIP_FB_PAGE_TOKEN) expires" in result.output
    assert FAKE_PAGE_TOKEN not in result.output
    assert graph.posts() == []
