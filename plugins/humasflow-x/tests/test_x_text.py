"""The weighted length and the thread split.

Rules checked here: the length X counts (twitter-text-parser) agrees with every case
about length and validity of twitter-text's official conformance file (carried in
``twitter_text_conformance/``, Apache-2.0); a thread's parts each fit a post, end with
their number, and are cut at white space only, never inside a URL, hashtag or mention.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from twitter_text import parse_tweet
from twitter_text.config import config

from humasflow_x.text import (
    ThreadSplitError,
    has_invalid_characters,
    split_thread,
    weighted_length,
)

CONFORMANCE = Path(__file__).with_name("twitter_text_conformance") / "validate.yml"
SECTIONS = {  # the configuration the official suites use for each section
    "tweets": "version1",
    "WeightedTweetsCounterTest": "version2",
    "WeightedTweetsWithDiscountedEmojiCounterTest": "version3",
    "UnicodeDirectionalMarkerCounterTest": "defaults",
}


def _cases():
    tests = yaml.safe_load(CONFORMANCE.read_text("utf-8"))["tests"]
    for section, version in SECTIONS.items():
        for case in tests[section]:
            yield pytest.param(section, version, case, id=f"{section}: {case['description']}")


CASES = list(_cases())


def test_the_conformance_file_has_the_expected_cases():
    assert len(CASES) == 52


@pytest.mark.parametrize(("section", "version", "case"), CASES)
def test_the_length_agrees_with_twitter_text_conformance(section, version, case):
    options = {"emoji_parsing_enabled": False, **config[version]}
    result = parse_tweet(case["text"], options)
    if section == "tweets":
        assert result.valid is case["expected"]
    else:
        assert result.asdict() == case["expected"]


def test_the_plugin_counts_with_the_current_configuration():
    assert weighted_length("Hi http://test.co") == 26
    assert weighted_length("😷" * 140) == 280          # an emoji counts 2
    assert weighted_length("👨‍👩‍👧‍👦") == 2                  # one emoji sequence
    assert weighted_length("故人西辞黄鹤楼") == 14
    assert has_invalid_characters("ABC\ufffeABC")
    assert not has_invalid_characters("x" * 300)       # too long is not an invalid character


def test_a_short_text_is_one_part_without_a_number():
    assert split_thread("  Selamat Dies Natalis!  ") == ["Selamat Dies Natalis!"]


def test_parts_fit_end_with_their_number_and_keep_every_word():
    text = " ".join(f"kata{n}" for n in range(200))
    parts = split_thread(text)
    assert len(parts) > 1
    assert all(weighted_length(p) <= 280 for p in parts)
    assert [p.rsplit(" ", 1)[1] for p in parts] == [f"{i}/{len(parts)}"
                                                     for i in range(1, len(parts) + 1)]
    assert " ".join(p.rsplit(" ", 1)[0] for p in parts).split() == text.split()


@pytest.mark.parametrize("entity", [
    "https://fisip.ub.ac.id/berita/dies-natalis-ke-44-fisip-universitas-brawijaya",
    "#DiesNatalisFISIPUB44", "@fisip_ub", "fisip.ub.ac.id/berita"])
def test_a_url_hashtag_or_mention_is_never_cut(entity):
    for shift in range(0, 60, 7):
        text = "a " * (120 + shift) + entity + " b" * 150
        parts = split_thread(text)
        assert sum(p.count(entity) for p in parts) == 1, (shift, parts)
        assert all(weighted_length(p) <= 280 for p in parts)


def test_a_plain_word_longer_than_a_post_is_cut_but_not_an_entity():
    parts = split_thread("x" * 600)
    assert "".join(p.rsplit(" ", 1)[0] for p in parts) == "x" * 600
    with pytest.raises(ThreadSplitError, match="never cut"):
        split_thread("#" + "a" * 300)
    with pytest.raises(ThreadSplitError, match="at most 2"):
        split_thread("kata " * 200, max_parts=2)


def test_the_number_widens_past_nine_parts():
    parts = split_thread("kata " * 700)
    assert len(parts) >= 10
    assert parts[-1].endswith(f" {len(parts)}/{len(parts)}")
    assert all(weighted_length(p) <= 280 for p in parts)


def test_cjk_and_emoji_count_double_in_a_thread():
    parts = split_thread("黄鹤楼 " * 100)
    assert all(weighted_length(p) <= 280 for p in parts)
    assert len(parts) == 3
