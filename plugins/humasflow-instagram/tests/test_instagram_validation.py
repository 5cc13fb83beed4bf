"""Validation without network: caption, hashtags, mentions, each kind's media, the media
store's facts (type, size, aspect ratio, duration) and a public URL for each file.

Rules checked here: every problem names the channel, the field and the rule; a post
without a media host says how to configure one; the messages come out in Indonesian
under ``i18n.use("id")``, and the plugin's catalog has no untranslated message.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from humasflow import Media, Post, i18n
from humasflow._catalogs import missing
from humasflow.testing import SteerableClock
from hypothesis import given
from hypothesis import strategies as st

import humasflow_instagram
from _instagram_support import image, post, publisher, video

PACKAGE = Path(humasflow_instagram.__file__).parent


class NoNetwork(requests.Session):
    def request(self, *args, **kwargs):
        raise AssertionError("validate() made a request")


def problems(p, **settings):
    made = publisher(settings, clock=SteerableClock(), session=NoNetwork())
    return [(x.field, x.rule) for x in made.validate(p)]


def test_a_good_post_of_each_kind_passes():
    assert problems(post(image())) == []
    assert problems(post(image("a.jpg"), video("b.mp4", duration=30), image("c.jpg"))) == []
    assert problems(post(video(duration=90), image("cover.jpg", width=1080, height=1920),
                         kind="reel", share_to_feed=True, thumb_offset=2000)) == []
    assert problems(post(image("s.jpg", width=1080, height=1920), kind="story")) == []
    assert problems(post(video("s.mp4", duration=20), kind="story")) == []


def test_the_caption_length_hashtags_and_mentions_have_limits():
    assert problems(post(text="x" * 2200)) == []
    assert problems(post(text="x" * 2201)) == [("text", "max_length")]
    tags = " ".join(f"#tag{i}" for i in range(6))
    assert problems(post(text=tags)) == [("text", "max_hashtags")]
    assert problems(post(text=tags), max_hashtags=10) == []
    assert problems(post(text="email humas@ub.ac.id #1 a#b")) == []  # not links
    mentions = " ".join(f"@akun_{i}" for i in range(21))
    assert problems(post(text=mentions)) == [("text", "max_mentions")]


def test_a_carousel_takes_2_to_10_items():
    eleven = [image(f"{i}.jpg") for i in range(11)]
    assert problems(post(*eleven)) == [("media", "max_count")]
    assert problems(post(image(), kind="carousel")) == [("media", "min_count")]


def test_each_kind_takes_its_media():
    assert problems(post(image("a.jpg"), image("b.jpg"), kind="image")) == [
        ("media", "max_count")]
    assert problems(post(image(), kind="reel")) == [("media[0]", "media_kind")]
    assert problems(post(video(), video("b.mp4"), kind="reel")) == [("media[1]", "media_kind")]
    assert problems(post(image(), kind="igtv")) == [("options.kind", "option_value")]
    assert problems(post(image(), kind="story", share_to_feed=True)) == [
        ("options.share_to_feed", "option_kind")]
    assert problems(post(image(), colour="red")) == [("options.colour", "option")]
    assert problems(post(video(duration=10), thumb_offset=12_000)) == [
        ("options.thumb_offset", "option_value")]


def test_no_media_is_refused():
    empty = Post(item_id=1, channel="ig", title="t", text="hi", media=())
    assert problems(empty) == [("media", "required")]


def test_the_media_store_facts_are_checked():
    assert problems(post(image("p.png", mime="image/png"))) == [("media[0]", "media_format")]
    assert problems(post(image(size=9 * (1 << 20)))) == [("media[0]", "max_bytes")]
    assert problems(post(image(width=1000, height=2000))) == [("media[0]", "aspect_ratio")]
    assert problems(post(image(width=2000, height=1000))) == [("media[0]", "aspect_ratio")]
    assert problems(post(image(width=1080, height=1350))) == []   # 4:5
    assert problems(post(image(width=1910, height=1000))) == []   # 1.91:1
    assert problems(post(video(duration=2))) == [("media[0]", "duration")]
    assert problems(post(video(duration=16 * 60))) == [("media[0]", "duration")]
    assert problems(post(video(duration=61), kind="story")) == [("media[0]", "duration")]
    assert problems(post(video(mime="video/webm"))) == [("media[0]", "media_format")]


def test_a_stored_file_without_a_media_host_says_how_to_configure_one():
    stored = Media("poster.jpg", kind="image", mime="image/jpeg", sha256="a" * 64,
                   size=1000, width=1080, height=1080)
    made = publisher({}, clock=SteerableClock(), session=NoNetwork())
    [problem] = made.validate(post(stored))
    assert (problem.channel, problem.field, problem.rule) == ("ig", "media[0]", "public_url")
    assert "[media.host]" in problem.message
    assert "FolderMediaHost" in problem.message
    assert "public_media_url" in problem.message


@pytest.mark.parametrize("url", ["http://10.1.2.3/a.jpg", "http://localhost:8000/a.jpg",
                                 "http://192.168.1.20/a.jpg", "https://intranet/a.jpg",
                                 "https://media.fisip.local/a.jpg", "http://[::1]/a.jpg"])
def test_a_media_host_url_the_internet_cannot_reach_is_refused(url):
    assert problems(post(image(url=url))) == [("media[0]", "public_url")]


def test_a_public_media_host_url_passes():
    assert problems(post(image(url="https://media.fisip.ub.ac.id/humas/a.jpg"))) == []


@given(st.text(max_size=2400))
def test_validation_never_fails_and_judges_any_caption(text):
    found = problems(post(image(), text=text))
    assert (("text", "max_length") in found) == (len(text) > 2200)


def test_the_messages_come_out_in_indonesian():
    made = publisher({}, clock=SteerableClock(), session=NoNetwork())
    with i18n.use("id"):
        [problem] = made.validate(post(text="x" * 2201))
    assert problem.message == "keterangan memiliki 2201 karakter; Instagram menerima paling " \
                              "banyak 2200"


def test_the_catalog_has_every_message_in_indonesian():
    assert missing("id", domain="humasflow_instagram", package_dir=PACKAGE) == []
