"""Validation, without any network call, and the plugin's messages in Indonesian.

Rules checked here: the weighted length (or, with threads on, whether the text can be
split); characters X refuses; media count, combination, type sniffed from the bytes
(never the name), size and video duration; alt text length; poll rules; the reply
target; unknown options; a URL draws a remark (or a refusal where the channel says so);
every message has an Indonesian translation.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from humasflow import Media, Post, i18n
from humasflow._catalogs import missing

import humasflow_x

PACKAGE = Path(humasflow_x.__file__).parent


def post(text="Selamat Dies Natalis!", media=(), **options):
    return Post(item_id=1, channel="x", title="t", text=text, media=tuple(media),
                options=options)


def rules(problems):
    return sorted((p.field, p.rule) for p in problems)


@pytest.fixture
def validate(make, fake):
    publisher = make()
    before = fake.count_calls()
    yield publisher.validate
    assert fake.count_calls() == before  # no network call


def test_a_good_post_passes(validate, stored):
    assert validate(post(media=[stored.image()])) == []


def test_the_weighted_length_counts_as_x_does(validate):
    assert validate(post("x" * 280)) == []
    assert validate(post("😷" * 140)) == []
    assert rules(validate(post("😷" * 141))) == [("text", "max_length")]
    assert validate(post("a " * 100 + "https://fisip.ub.ac.id/" + "b" * 200)) == []
    [problem] = validate(post("故" * 141))
    assert (problem.limit, problem.actual) == (280, 282)
    assert "thread = true" in problem.message


def test_with_threads_a_long_text_is_fine_unless_it_cannot_be_split(make, fake):
    threaded = make({"thread": True})
    assert threaded.validate(post("kata " * 200)) == []
    assert rules(threaded.validate(post("#" + "a" * 300))) == [("text", "thread_split")]
    assert rules(make({"thread": True, "thread_max_parts": 2}).validate(
        post("kata " * 200))) == [("text", "thread_split")]
    # The post's option wins over the channel's setting, both ways.
    assert make().validate(post("kata " * 200, thread=True)) == []
    assert rules(threaded.validate(post("kata " * 200, thread=False))) == [
        ("text", "max_length")]


def test_characters_x_refuses(validate):
    assert rules(validate(post("Halo\ufffe"))) == [("text", "characters")]


def test_media_rules(validate, stored):
    image, video = stored.image(), stored.video()
    gif = stored.bytes(b"GIF89a" + bytes(40), "anim.gif")
    assert rules(validate(post(media=[image] * 5))) == [("media", "max_count")]
    assert rules(validate(post(media=[image, video]))) == [("media", "combination")]
    assert rules(validate(post(media=[gif, image]))) == [("media", "combination")]
    assert validate(post(media=[gif])) == []
    assert validate(post(media=[video])) == []
    assert rules(validate(post(media=[stored.video(seconds=200)]))) == [
        ("media[0]", "duration")]
    assert rules(validate(post(media=[attrs.evolve(image, size=6 * 1024 * 1024)]))) == [
        ("media[0]", "max_bytes")]
    assert rules(validate(post(media=[attrs.evolve(image, alt="a" * 1001)]))) == [
        ("media[0]", "alt_length")]


def test_the_type_comes_from_the_bytes_not_the_name(validate, stored):
    webm = stored.bytes(bytes.fromhex("1a45dfa3") + bytes(60), "clip.mp4")
    assert webm.mime == "video/webm"
    assert rules(validate(post(media=[webm]))) == [("media[0]", "media_format")]
    png_named_jpg = stored.image(name="poster.jpg")
    assert validate(post(media=[attrs.evolve(png_named_jpg, source="poster.jpg")])) == []


def test_a_longer_video_where_the_account_may_post_one(make, fake, stored):
    assert make({"video_max_seconds": 600}).validate(
        post(media=[stored.video(seconds=200)])) == []


def test_media_handed_over_as_urls_cannot_be_uploaded(validate):
    url = Media("https://media.fisip.example/poster.png", passthrough=True, kind="image")
    assert ("media[0]", "media_stored") in rules(validate(post(media=[url])))


def test_poll_rules(validate, stored):
    good = {"options": ["Ya", "Tidak"], "duration_minutes": 60}
    assert validate(post(poll=good)) == []
    assert rules(validate(post(poll={"options": ["Ya"], "duration_minutes": 60}))) == [
        ("options.poll.options", "poll_options")]
    assert rules(validate(post(poll={"options": ["Ya", "x" * 26],
                                     "duration_minutes": 4}))) == [
        ("options.poll.duration_minutes", "poll_duration"),
        ("options.poll.options[1]", "poll_option")]
    assert rules(validate(post(poll=good, media=[stored.image()]))) == [
        ("options.poll", "poll_with_media")]
    assert rules(validate(post(poll="ya/tidak"))) == [("options.poll", "poll")]


def test_in_a_thread_the_poll_goes_last_and_the_media_first(make, fake, stored):
    publisher = make({"thread": True})
    thread = post("kata " * 120, media=[stored.image()],
                  poll={"options": ["Ya", "Tidak"], "duration_minutes": 60})
    assert publisher.validate(thread) == []
    plan = publisher.plan(thread)
    assert [(p.media, p.poll) for p in plan] == [(True, False), (False, False),
                                                 (False, True)]


def test_reply_to_and_unknown_options(validate):
    assert validate(post(reply_to="1880000000000000001")) == []
    assert validate(post(reply_to="https://twitter.com/fisip_ub/status/188")) == []
    assert rules(validate(post(reply_to="kemarin"))) == [("options.reply_to", "reply_to")]
    assert rules(validate(post(thred=True))) == [("options.thred", "option")]


def test_a_url_draws_a_remark_not_a_refusal_unless_the_channel_says(make, fake, caplog):
    text = "Daftar di https://fisip.ub.ac.id/daftar"
    publisher = make()
    assert publisher.validate(post(text)) == []
    assert rules(publisher.notices) == [("text", "links")]
    assert "pay-per-use" in caplog.text
    assert rules(make({"links": "refuse"}).validate(post(text))) == [("text", "links")]
    quiet = make({"links": "allow"})
    assert quiet.validate(post(text)) == []
    assert quiet.notices == []


def test_the_link_is_part_of_the_text(validate):
    long_link = Post(item_id=1, channel="x", title="t", text="x" * 260,
                     link="https://fisip.ub.ac.id/dies-natalis")
    assert rules(validate(long_link)) == [("text", "max_length")]  # 260 + 1 + 23


def test_settings_are_checked_when_the_channel_is_added():
    from humasflow import ConfigurationError

    from humasflow_x import XPublisher

    assert XPublisher.prepare_settings({"thread": True, "timeout": 5}) == {
        "thread": True, "timeout": 5.0}
    for bad in ({"thred": True}, {"thread": "ya"}, {"timeout": 0}, {"links": "maybe"}):
        with pytest.raises(ConfigurationError):
            XPublisher.prepare_settings(bad)


def test_every_message_has_an_indonesian_translation():
    assert missing("id", domain="humasflow_x", package_dir=PACKAGE) == []


def test_a_validation_message_in_indonesian(make, fake):
    with i18n.use("id"):
        [problem] = make().validate(post("x" * 300))
    assert "karakter" in problem.message
    assert "280" in problem.message
