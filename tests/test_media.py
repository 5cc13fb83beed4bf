"""Media: public URLs for stored media, and media problems as validation problems.

A platform that fetches media itself needs a public URL: the office's media host (or
the ``public_media_url`` hook) gives the posts one, from the media store. A kind, type
or size a channel does not take is a :class:`~humasflow.publishing.contract.Problem`
found before approval (judged from what the store sniffed, not the file's name), never
a crash while posting.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from pathlib import Path

import attrs
import pytest

from humasflow import Office
from humasflow.errors import ContentInvalid, MediaUnavailable
from humasflow.hookspecs import hookimpl
from humasflow.mediastore import MediaStore
from humasflow.models import Media
from humasflow.publishing.contract import Post
from humasflow.publishing.media import FolderMediaHost, check_media
from humasflow.testing import (
    FakePublisher,
    fake_publisher_plugin,
    plugin_registered,
    sample_image,
    sample_video,
)

BASE = "https://media.fisip.example/humas/"


def write(path: Path, size: int = 64, fill: bytes = b"\0") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff" + fill * (size - 3))
    return str(path)


@pytest.fixture
def media_store(tmp_path) -> MediaStore:
    return MediaStore(tmp_path / "media-store")


def stored(store: MediaStore, source: str, alt: str = "") -> Media:
    """The media as the office records them after attaching them."""
    with open(source, "rb") as f:
        info = store.add(f, source=source)
    return Media(source, alt=alt, sha256=info.sha256, size=info.size, mime=info.mime,
                 kind=info.kind, width=info.width, height=info.height)


def post_with(*media: Media | str, channel: str = "ig", store: MediaStore | None = None,
              ) -> Post:
    items = tuple(m if isinstance(m, Media)
                  else Media(m, passthrough=True) if m.startswith("https://")
                  else stored(store, m) if store is not None else Media(m) for m in media)
    return Post(item_id=7, channel=channel, title="Wisuda", text="Selamat", media=items)


# -- FolderMediaHost ----------------------------------------------------------------------------


def test_a_file_is_published_under_its_content_hash(tmp_path, media_store):
    source = write(tmp_path / "in" / "Poster Wisuda.JPG", 4096)
    host = FolderMediaHost(tmp_path / "public", BASE)

    url = host(stored(media_store, source), media_store)

    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()[:32]
    assert url == f"{BASE}{digest}.jpg"
    assert (tmp_path / "public" / f"{digest}.jpg").read_bytes() == Path(source).read_bytes()


def test_publishing_is_idempotent_and_same_content_shares_one_url(tmp_path, media_store):
    a = stored(media_store, write(tmp_path / "a.jpg", 500, b"a"))
    copy = stored(media_store, write(tmp_path / "elsewhere" / "a-copy.jpg", 500, b"a"))
    other = stored(media_store, write(tmp_path / "b.jpg", 500, b"b"))
    host = FolderMediaHost(tmp_path / "public", BASE.rstrip("/"))  # trailing slash optional

    first = host(a, media_store)
    published = next((tmp_path / "public").iterdir())
    mtime = published.stat().st_mtime_ns
    assert host(a, media_store) == first
    assert host(copy, media_store) == first
    assert published.stat().st_mtime_ns == mtime  # not written again
    assert host(other, media_store) != first
    assert sorted(p.suffix for p in (tmp_path / "public").iterdir()) == [".jpg", ".jpg"]


def test_urls_and_media_never_stored_are_not_published(tmp_path, media_store):
    host = FolderMediaHost(tmp_path / "public", BASE)
    assert host(Media("https://cdn.example/poster.jpg", passthrough=True), media_store) is None
    assert host(Media(str(tmp_path / "gone.jpg")), media_store) is None
    assert not (tmp_path / "public").exists()


def test_changed_bytes_in_the_media_store_are_never_published(tmp_path, media_store):
    media = stored(media_store, write(tmp_path / "a.jpg", 500, b"a"))
    kept = media_store.root / media.sha256[:2] / media.sha256
    kept.chmod(0o644)
    kept.write_bytes(b"\xff\xd8\xff" + b"evil" * 100)
    host = FolderMediaHost(tmp_path / "public", BASE)
    with pytest.raises(MediaUnavailable, match="changed"):
        host(media, media_store)
    assert not list((tmp_path / "public").glob("*.jpg"))


def test_the_base_url_must_be_a_web_address(tmp_path):
    with pytest.raises(ValueError, match="public http"):
        FolderMediaHost(tmp_path, "/var/www/media")


def test_the_same_file_published_from_several_threads_at_once(tmp_path, media_store):
    # The channels of one item are posted concurrently and may publish the same file.
    host = FolderMediaHost(tmp_path / "public", BASE)
    for round_ in range(10):
        source = stored(media_store, write(tmp_path / f"video-{round_}.mp4", 2 * 1024 * 1024,
                                           bytes([round_])))
        start = threading.Barrier(6, timeout=10)
        results, errors = [], []

        def publish(source=source, start=start, results=results, errors=errors):
            start.wait()
            try:
                results.append(host(source, media_store))
            except Exception as exc:  # collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=publish) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(set(results)) == 1
    names = sorted(p.name for p in (tmp_path / "public").iterdir())
    assert len(names) == 10
    assert not [n for n in names if n.endswith(".tmp")]


# -- the office gives posts public URLs ------------------------------------------------------------


@pytest.fixture
def fake(office):
    plugin = fake_publisher_plugin()
    with plugin_registered(plugin):
        office.add_channel("ig", "fake", by="admin")
        office.add_channel("x", "fake", by="admin")
        yield plugin


def publisher(plugin, name: str) -> FakePublisher:
    return plugin.publishers.setdefault(name, FakePublisher(channel=name))


def ready(office, media, channels=("ig", "x")) -> int:
    item = office.new_item("Wisuda", by="rina", channels=list(channels))
    office.complete(item.id, by="rina", text="Selamat kepada para wisudawan")
    office.complete(item.id, by="rina", notes="Canva")
    office.complete(item.id, by="rina", media=media)
    office.approve(item.id, by="budi")
    office.complete(item.id, by="rina", media=media)
    office.pass_recheck(item.id, by="sari")
    return item.id


def test_the_offices_media_host_gives_the_posted_media_their_url(
        office, fake, clock, tmp_path):
    local = write(tmp_path / "poster.jpg", 300)
    remote = "https://cdn.example/already-public.jpg"
    hosted = Office(office._store, clock=clock, environ={}, media_store=office.media,
                    media_host=FolderMediaHost(tmp_path / "public", BASE))
    item_id = ready(hosted, [local, Media(remote, passthrough=True)])

    hosted.post(item_id, by="rina")

    (sent,) = publisher(fake, "ig").posted
    digest = hashlib.sha256(Path(local).read_bytes()).hexdigest()[:32]
    assert sent.media[0].source == local
    assert sent.media[0].url == sent.media[0].public_url == f"{BASE}{digest}.jpg"
    assert (sent.media[1].url, sent.media[1].public_url) == ("", remote)
    # The stored item keeps the hash; the URL belongs to the post.
    assert hosted.item(item_id).produced[0].url == ""
    assert hosted.item(item_id).produced[0].sha256 == hashlib.sha256(
        Path(local).read_bytes()).hexdigest()


class CDN:
    """A plugin that uploads media to a CDN (here: makes up the URL)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    @hookimpl
    def public_media_url(self, office, media, channel):
        self.calls.append((channel, media.source))
        return f"https://cdn.example/{channel}/{Path(media.source).name}"


def test_the_public_media_url_hook_fills_the_url_per_channel(office, fake, tmp_path):
    local = write(tmp_path / "poster.jpg")
    cdn = CDN()
    with plugin_registered(cdn):
        item_id = ready(office, [local])
        office.post(item_id, by="rina")

    assert publisher(fake, "ig").posted[0].media[0].url == "https://cdn.example/ig/poster.jpg"
    assert publisher(fake, "x").posted[0].media[0].url == "https://cdn.example/x/poster.jpg"


def test_the_offices_media_host_comes_before_the_hook(office, fake, clock, tmp_path):
    local = write(tmp_path / "poster.jpg")
    cdn = CDN()
    hosted = Office(office._store, clock=clock, environ={}, media_store=office.media,
                    media_host=FolderMediaHost(tmp_path / "public", BASE))
    with plugin_registered(cdn):
        item_id = ready(hosted, [local])
        hosted.post(item_id, by="rina")
    assert cdn.calls == []
    assert publisher(fake, "ig").posted[0].media[0].url.startswith(BASE)


def test_a_media_host_failing_while_posting_fails_the_channel_and_retries_it(
        office, fake, clock, tmp_path):
    item_id = ready(office, [write(tmp_path / "poster.jpg")], ["ig"])
    # post() validates (call 1) and hands what it validated to the run, then the attempt
    # asks for the URL it sends (call 2): that one fails.
    flaky = _FailOnCall(2)
    with plugin_registered(flaky):
        report = office.post(item_id, by="rina")
        ig = report.publications["ig"]
        assert (ig.state, ig.error_class) == ("failed", "ConnectionError")
        assert "nothing was sent" in ig.error_message
        assert ig.next_attempt_at is not None  # retried like a server error
        assert (ig.claimed_by, ig.lease_until) == (None, None)
        assert publisher(fake, "ig").posted == []

        clock.set(ig.next_attempt_at)
        (report,) = office.run_due()
    assert report.done
    assert publisher(fake, "ig").posted[0].media[0].url == "https://cdn.example/ig/poster.jpg"


class _FailOnCall:
    """A ``public_media_url`` hook that fails on its ``n``-th call."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.count = 0

    @hookimpl
    def public_media_url(self, office, media, channel):
        self.count += 1
        if self.count == self.n:
            raise ConnectionError("cdn.example is unreachable")
        return f"https://cdn.example/{channel}/{Path(media.source).name}"


def test_a_media_host_that_is_down_does_not_stop_other_due_items(
        office, fake, clock, tmp_path):
    broken = write(tmp_path / "broken.jpg", 100, b"b")
    fine = write(tmp_path / "fine.jpg", 100, b"f")

    class Cdn:
        down = True

        @hookimpl
        def public_media_url(self, office, media, channel):
            if self.down and media.source.endswith("broken.jpg"):
                raise ConnectionError("cdn.example is unreachable")
            return f"https://cdn.example/{Path(media.source).name}"

    picky = Cdn()
    picky.down = False
    with plugin_registered(picky):
        first = ready(office, [broken], ["ig"])
        second = ready(office, [fine], ["ig"])
        office.schedule(first, clock(), by="rina")
        office.schedule(second, clock() + dt.timedelta(seconds=1), by="rina")
        picky.down = True
        clock.advance(seconds=1)

        reports = office.run_due()
        assert [r.item.id for r in reports] == [second]
        assert reports[0].done
        assert office.item(first).state == "post"

        picky.down = False
        (report,) = office.run_due()
    assert report.item.id == first
    assert report.done


# -- check_media ------------------------------------------------------------------------------


def test_check_media_passes_media_the_channel_takes(tmp_path, media_store):
    post = post_with(write(tmp_path / "a.jpg"),
                     stored(media_store, sample_image(tmp_path / "b.png"), alt="b"),
                     "https://cdn.example/c.webp", store=media_store)
    assert check_media(post) == []


def test_media_never_stored_are_a_problem_and_nothing_more_is_said_about_them(tmp_path):
    missing = str(tmp_path / "gone.jpg")
    (problem,) = check_media(post_with(missing), need_public_url=True, max_bytes=10)
    assert (problem.channel, problem.field, problem.rule) == ("ig", "media[0]",
                                                             "media_stored")
    assert problem.actual == missing
    assert missing in problem.message


def test_a_kind_the_channel_does_not_take_is_a_problem(tmp_path, media_store):
    video = sample_video(tmp_path / "teaser.mp4")
    problems = check_media(post_with(write(tmp_path / "a.jpg"), video, store=media_store),
                           "x-images", kinds=("image",))
    (problem,) = problems
    assert (problem.channel, problem.field, problem.rule) == ("x-images", "media[1]",
                                                             "media_kind")
    assert (problem.actual, problem.limit) == ("video", ("image",))
    assert "takes image" in problem.message


@pytest.mark.parametrize("name", ["poster.jpg", "poster.png.jpg", "poster"])
def test_the_type_is_judged_from_the_bytes_not_the_name(tmp_path, media_store, name):
    # PNG bytes under a JPEG name: a channel that takes only JPEG refuses them.
    png = sample_image(tmp_path / "real.png")
    lying = tmp_path / name
    lying.write_bytes(Path(png).read_bytes())
    (problem,) = check_media(post_with(str(lying), store=media_store),
                             formats={"image": (".jpg", ".jpeg")})
    assert (problem.field, problem.rule, problem.actual) == ("media[0]", "media_format",
                                                             "image/png")


def test_a_channel_may_narrow_the_formats(tmp_path, media_store):
    formats = {"image": (".jpg", ".jpeg")}
    (problem,) = check_media(post_with(sample_image(tmp_path / "a.png"), store=media_store),
                             formats=formats)
    assert problem.rule == "media_format"
    assert problem.actual == "image/png"
    assert check_media(post_with(write(tmp_path / "a.JPEG"), store=media_store),
                       formats=formats) == []


def test_a_passed_through_url_without_a_known_ending_is_not_judged_by_its_name():
    post = post_with("https://cdn.example/media?id=42", "https://cdn.example/x.png?v=2")
    (problem,) = check_media(post, formats={"image": (".jpg",)})
    assert (problem.field, problem.rule, problem.actual) == ("media[1]", "media_format", ".png")


def test_a_file_too_large_is_a_problem_with_the_limit_and_its_size(tmp_path, media_store):
    big = write(tmp_path / "big.jpg", 6 * 1024 * 1024)
    (problem,) = check_media(post_with(big, store=media_store), max_bytes=5 * 1024 * 1024)
    assert (problem.rule, problem.limit, problem.actual) == (
        "max_bytes", 5 * 1024 * 1024, 6 * 1024 * 1024)
    assert "6 MB" in problem.message
    assert "5 MB" in problem.message


def test_size_limits_may_differ_by_kind(tmp_path, media_store):
    gif = tmp_path / "anim.gif"
    gif.write_bytes(b"GIF89a" + b"\0" * (8 * 1024 - 6))
    image = write(tmp_path / "still.jpg", 8 * 1024)
    limits = {"image": 4 * 1024, "gif": 15 * 1024}
    (problem,) = check_media(post_with(str(gif), image, store=media_store), max_bytes=limits)
    assert (problem.field, problem.limit) == ("media[1]", 4 * 1024)


def test_too_many_media_is_a_problem(tmp_path, media_store):
    files = [write(tmp_path / f"{i}.jpg", fill=bytes([i])) for i in range(5)]
    (problem,) = check_media(post_with(*files, store=media_store), max_count=4)
    assert (problem.field, problem.rule, problem.limit, problem.actual) == (
        "media", "max_count", 4, 5)


def test_stored_media_without_a_public_url_are_a_problem_when_the_platform_fetches(
        tmp_path, media_store):
    local = stored(media_store, write(tmp_path / "a.jpg"))
    (problem,) = check_media(post_with(local), need_public_url=True)
    assert problem.rule == "public_url"
    assert "media_host" in problem.message
    hosted = attrs.evolve(local, url="https://media.example/abc.jpg")
    assert check_media(post_with(hosted, "https://cdn.example/b.jpg"),
                       need_public_url=True) == []


# -- media problems through the workflow --------------------------------------------------------


@attrs.define
class Picky(FakePublisher):
    """Like Instagram: JPEG images up to 8 KB, fetched from a public URL."""

    def validate(self, post):
        return check_media(post, kinds=("image",), formats={"image": (".jpg", ".jpeg")},
                           max_bytes=8 * 1024, need_public_url=True)


def test_media_problems_stop_the_design_step_as_validation_problems(office, fake, tmp_path):
    fake.publishers["ig"] = Picky(channel="ig")
    item = office.new_item("Wisuda", by="rina", channels=["ig", "x"])
    office.complete(item.id, by="rina", text="Selamat")
    office.complete(item.id, by="rina", notes="Canva")

    media = [sample_image(tmp_path / "a.png"), write(tmp_path / "big.jpg", 9 * 1024),
             write(tmp_path / "ok.jpg")]
    with pytest.raises(ContentInvalid) as info:
        office.complete(item.id, by="rina", media=media)
    assert [(p.channel, p.field, p.rule) for p in info.value.problems] == [
        ("ig", "media[0]", "media_format"),
        ("ig", "media[1]", "max_bytes"),
        ("ig", "media[2]", "public_url"),
    ]
    # A missing file is refused when it is attached, before any channel is asked.
    with pytest.raises(ContentInvalid) as info:
        office.complete(item.id, by="rina", media=[str(tmp_path / "missing.jpg")])
    assert [(p.channel, p.field, p.rule) for p in info.value.problems] == [
        ("-", "media[0]", "file_exists")]


def test_a_file_gone_before_posting_does_not_matter_its_bytes_were_copied(
        office, fake, clock, tmp_path):
    fake.publishers["ig"] = Picky(channel="ig")
    hosted = Office(office._store, clock=clock, environ={}, media_store=office.media,
                    media_host=FolderMediaHost(tmp_path / "public", BASE))
    poster = write(tmp_path / "poster.jpg")
    kept = Path(poster).read_bytes()
    item_id = ready(hosted, [poster])
    Path(poster).unlink()

    report = hosted.post(item_id, by="rina")
    assert report.done
    (sent,) = fake.publishers["ig"].posted
    assert hosted.media.read(sent.media[0]) == kept


def test_media_deleted_from_the_store_before_posting_are_never_posted(
        office, fake, clock, tmp_path):
    poster = write(tmp_path / "poster.jpg")
    item_id = ready(office, [poster], ["ig"])
    media = office.item(item_id).produced[0]
    (office.media.root / media.sha256[:2] / media.sha256).unlink()

    report = office.post(item_id, by="rina")
    ig = report.publications["ig"]
    assert (ig.state, ig.error_class) == ("failed", "MediaUnavailable")
    assert "missing from the media store" in ig.error_message
    assert publisher(fake, "ig").posted == []
