"""Secrets never reach the permanent record, a log line, the terminal or an export.

Rules checked here: a publisher's message holding a token (a Graph-style URL with
``access_token=``, or the literal credential value handed to it) is scrubbed before the
channel's record and its hash-chained event are written, so neither the raw database
rows, the log, ``humasflow show``/``status``/``export`` nor the hooks ever see it; the
scrubbing leaves prose and short values alone; a credential reference that looks like a
token, and a channel setting named or shaped like a secret, are refused, naming the key
and never the value, with nothing written.
"""

from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from humasflow import Office
from humasflow.cli import cli
from humasflow.errors import (
    AuthenticationFailed,
    OutcomeUnknown,
    PlatformError,
    SecretInConfiguration,
)
from humasflow.models import Event
from humasflow.publishing.contract import Receipt
from humasflow.scrubbing import (
    REDACTED,
    ScrubFilter,
    get_logger,
    looks_like_token,
    remember_secret,
    scrub,
)
from humasflow.testing import (
    FakePublisher,
    fake_publisher_plugin,
    item_ready_to_post,
    plugin_registered,
)

# The credential handed to the publisher, and a token only the platform's URL carries.
SECRET = "hf-live-Secr3tValue-0001"
URL_TOKEN = "EAAGm0PX4ZCpsBAO7ZBxYzq9Wl2d"
ENV = {"HF_X_ACCESS_TOKEN": SECRET}
GRAPH_URL = ("https://graph.facebook.com/v19.0/1234/feed?message=Dies+Natalis"
             f"&access_token={URL_TOKEN}")


@pytest.fixture
def leaky(office, store, clock):
    """An office whose channel ``x`` (a fake publisher) holds the credential SECRET."""
    plugin = fake_publisher_plugin()
    with plugin_registered(plugin):
        posting = Office(store, clock=clock, environ=ENV)
        posting.add_channel("x", "fake", credentials={"access_token": "HF_X_ACCESS_TOKEN"},
                            settings={"retry": {"jitter": 0}}, by="admin")
        yield posting, plugin


def raw_record(office: Office) -> str:
    """Every row of the tables that hold text from outside, as the database has them."""
    with office._store.engine.connect() as conn:
        rows = [*conn.execute(sa.text("SELECT * FROM publications")),
                *conn.execute(sa.text("SELECT * FROM events"))]
    return "\n".join(repr(tuple(row)) for row in rows)


def cli_output(office: Office, clock, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--db", office_target(office), *args],
                                obj={"clock": clock, "environ": ENV})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.output


def office_target(office: Office) -> str:
    url = office._store.engine.url
    if url.get_backend_name() == "sqlite":
        return str(url.database)
    return url.render_as_string(hide_password=False)


def assert_nowhere(office: Office, clock, item_id: int, caplog, *secrets: str) -> None:
    texts = {
        "database": raw_record(office),
        "log": caplog.text,
        "show": cli_output(office, clock, "show", str(item_id)),
        "status": cli_output(office, clock, "status", str(item_id)),
        "export": cli_output(office, clock, "export"),
        "export csv": cli_output(office, clock, "export", "--format", "csv"),
    }
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"{secret!r} is in the {where}"


LEAKS = {
    "graph url": lambda: PlatformError(f"POST {GRAPH_URL} answered 500", code=500),
    "credential value": lambda: AuthenticationFailed(
        f"the platform refused the token {SECRET}", credential="access_token"),
    "header repr": lambda: OutcomeUnknown(
        f"timeout; request headers {{'Authorization': 'Bearer {SECRET}'}}"),
    "crash": lambda: RuntimeError(f"connection reset while sending {GRAPH_URL}"),
}


@pytest.mark.parametrize("leak", sorted(LEAKS))
def test_a_token_in_a_publishers_error_is_recorded_nowhere(leaky, clock, image, caplog, leak):
    office, plugin = leaky
    caplog.set_level(logging.DEBUG, logger="humasflow")
    item = item_ready_to_post(office, text="Dies Natalis", media=[image], channels=["x"])
    plugin.publishers["x"] = FakePublisher(channel="x", fail_with=LEAKS[leak]())
    report = office.post(item.id, by="rina")
    pub = report.publications["x"]
    assert pub.state in ("failed", "unknown")
    assert REDACTED in (pub.error_message or "")
    events = [e for e in office.history(item.id) if e.data.get("channel") == "x"]
    assert REDACTED in events[-1].data["error_message"]
    assert office.verify().ok  # scrubbed before sealing: the chain holds the scrubbed text
    assert_nowhere(office, clock, item.id, caplog, SECRET, URL_TOKEN)


def test_the_parameter_name_stays_so_people_see_what_was_removed(leaky, image):
    office, plugin = leaky
    item = item_ready_to_post(office, text="Dies Natalis", media=[image], channels=["x"])
    plugin.publishers["x"] = FakePublisher(channel="x", fail_with=LEAKS["graph url"]())
    pub = office.post(item.id, by="rina").publications["x"]
    assert pub.error_message.startswith(
        "POST https://graph.facebook.com/v19.0/1234/feed?message=Dies+Natalis"
        "&access_token=[redacted] answered 500")


def test_an_error_while_preparing_the_post_is_scrubbed(leaky, clock, image, caplog):
    office, plugin = leaky
    item = item_ready_to_post(office, text="Dies Natalis", media=[image], channels=["x"])
    office.validate(item)  # the validating publisher is made (and kept) now
    make = plugin.factory

    def factory(channel, context):
        if context.credentials.get("access_token"):
            raise ConnectionError(f"cannot reach {GRAPH_URL} with {SECRET}")
        return make(channel, context)

    plugin.factory = factory
    pub = office.post(item.id, by="rina").publications["x"]
    assert pub.state == "failed"
    assert "(while preparing the post; nothing was sent)" in pub.error_message
    assert_nowhere(office, clock, item.id, caplog, SECRET, URL_TOKEN)


def test_a_reconcile_error_is_scrubbed_in_the_log(leaky, clock, image, caplog):
    office, plugin = leaky

    class Unsure(FakePublisher):
        def reconcile(self, post, progress):
            raise OutcomeUnknown(f"lookup failed: {GRAPH_URL} ({SECRET})")

    item = item_ready_to_post(office, text="Dies Natalis", media=[image], channels=["x"])
    plugin.publishers["x"] = Unsure(channel="x", fail_with=RuntimeError(f"reset {SECRET}"))
    caplog.set_level(logging.DEBUG, logger="humasflow")
    office.post(item.id, by="rina")
    office.post(item.id, by="rina")  # looks the unknown outcome up, which fails
    assert "still unknown (lookup failed:" in caplog.text
    assert_nowhere(office, clock, item.id, caplog, SECRET, URL_TOKEN)


def test_a_person_confirming_with_a_tokened_url_records_it_scrubbed(leaky, image):
    office, plugin = leaky
    item = item_ready_to_post(office, text="Dies Natalis", media=[image], channels=["x"])
    plugin.publishers["x"] = FakePublisher(channel="x", fail_with=RuntimeError("reset"))
    office.post(item.id, by="rina")
    office.confirm(item.id, "x", by="rina", url=f"https://x.example/p/1?token={URL_TOKEN}")
    assert URL_TOKEN not in raw_record(office)
    assert office.publications(item.id)["x"].url == "https://x.example/p/1?token=[redacted]"


def test_log_lines_of_the_humasflow_loggers_are_scrubbed(caplog):
    remember_secret(SECRET)
    caplog.set_level(logging.DEBUG)
    try:
        raise RuntimeError(f"boom at {GRAPH_URL}")
    except RuntimeError:
        logging.getLogger("humasflow").exception("posting failed with %s", SECRET)
    get_logger("humasflow.worker").warning("worker saw %s", f"refresh_token={URL_TOKEN}")
    assert "posting failed with [redacted]" in caplog.text
    assert "access_token=[redacted]" in caplog.text  # the traceback, scrubbed
    assert "worker saw refresh_token=[redacted]" in caplog.text
    assert SECRET not in caplog.text
    assert URL_TOKEN not in caplog.text


def test_the_log_filter_leaves_a_bad_format_string_to_logging():
    record = logging.LogRecord("humasflow", logging.INFO, __file__, 1, "%d", ("x",), None)
    assert ScrubFilter().filter(record)
    assert record.msg == "%d"


def test_an_export_of_an_older_record_holding_a_secret_is_scrubbed_and_marked(office, clock):
    item = office.new_item("Dies Natalis", by="rina")
    with office._store.writing() as conn:  # as a version without scrubbing recorded it
        office._store.append_item_event(conn, Event(
            org=office.org, stream="", seq=0, at=clock(), actor="rina", action="channel_failed",
            from_state=item.state, to_state=item.state, note="",
            data={"channel": "x", "error_message": f"refused {GRAPH_URL}"}), item.id)
    rows = [json.loads(line) for line in cli_output(office, clock, "export").splitlines()]
    assert [r.get("redacted") for r in rows if r["stream"] == f"item:{item.id}"] == [None, True]
    assert URL_TOKEN not in json.dumps(rows)
    assert URL_TOKEN not in cli_output(office, clock, "export", "--format", "csv")
    assert URL_TOKEN not in cli_output(office, clock, "show", str(item.id))


# -- the scrubbing itself ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("https://graph.facebook.com/me?fields=id&access_token=EAAB1234abcd&x=1",
     "https://graph.facebook.com/me?fields=id&access_token=[redacted]&x=1"),
    ("client_id=42&client_secret=s3cr3t&grant_type=refresh_token&refresh_token=r-1",
     "client_id=42&client_secret=[redacted]&grant_type=refresh_token&refresh_token=[redacted]"),
    ('{"access_token": "abc.def", "token_type": "bearer", "expires_in": 7200}',
     '{"access_token": "[redacted]", "token_type": "bearer", "expires_in": 7200}'),
    ("Authorization: Bearer AAAAAAAAAAAAAAAAAAAAAMLheAAAAAAA0%2BuSeid\nHost: api.x.com",
     "Authorization: [redacted]\nHost: api.x.com"),
    ('Authorization: OAuth oauth_consumer_key="ck1", oauth_nonce="n", oauth_signature="s%3D"',
     "Authorization: [redacted]"),
    ("{'Authorization': 'Bearer 9f8e7d6c5b4a', 'Accept': '*/*'}",
     "{'Authorization': '[redacted]', 'Accept': '*/*'}"),
    ('oauth_token="t-123", oauth_token_secret="s-456"',
     'oauth_token="[redacted]", oauth_token_secret="[redacted]"'),
    ("sent with Bearer 0a1b2c3d4e5f6a7b", "sent with Bearer [redacted]"),
    ("postgresql://hf:hunter2pw@db.example/humas", "postgresql://hf:[redacted]@db.example/humas"),
    ("token EAAGm0PX4ZCpsBAO7ZBxYzq9Wl2dQ was refused", "token [redacted] was refused"),
    ("the Bearer token was refused; renew the credential 'access_token'",
     "the Bearer token was refused; renew the credential 'access_token'"),
    ("OAuth 2.0 tokens expire", "OAuth 2.0 tokens expire"),
    ("{'access_token': 'abc123", "{'access_token': [redacted]"),  # cut off mid-value
])
def test_token_shaped_values_are_scrubbed(text, expected):
    assert scrub(text) == expected
    assert scrub(expected) == expected


def test_credential_values_are_scrubbed_also_url_encoded():
    value = "tok/with+chars=="
    assert scrub(f"a {value} b", [value]) == f"a {REDACTED} b"
    assert scrub("?t=tok%2Fwith%2Bchars%3D%3D", [value]) == f"?t={REDACTED}"


_TOKEN_ALPHABET = st.characters(codec="ascii", categories=("L", "N"),
                                include_characters="-_.~+/=")


@given(secret=st.text(_TOKEN_ALPHABET, min_size=8, max_size=60),
       before=st.text(max_size=40), after=st.text(max_size=40))
def test_a_credential_value_never_survives_scrubbing(secret, before, after):
    text = f"{before}{secret}{after}"
    assert secret not in scrub(text, [secret])
    assert scrub(scrub(text, [secret]), [secret]) == scrub(text, [secret])


@given(name=st.sampled_from(["access_token", "token", "client_secret", "oauth_token",
                             "refresh_token", "fb_exchange_token", "password"]),
       value=st.text(st.characters(codec="ascii", categories=("L", "N")), min_size=1,
                     max_size=40))
def test_a_token_parameter_never_survives_scrubbing(name, value):
    scrubbed = scrub(f"https://api.example/x?a=1&{name}={value}&b=2")
    assert scrubbed == f"https://api.example/x?a=1&{name}=[redacted]&b=2"


def test_short_values_do_not_blank_out_a_message():
    remember_secret("a")
    remember_secret("abc1234")
    message = "a channel named abc1234 was posted as planned"
    assert scrub(message, ["a", "x", "abc1234"]) == message


def test_the_default_messages_of_humasflow_survive_scrubbing():
    message = ("the access token was revoked; renew the credential 'access_token' "
               "(environment variable FISIP_X_ACCESS_TOKEN) of channel 'x', then post again: "
               "humasflow retry 3 x --as <your id>")
    assert scrub(message) == message


@pytest.mark.parametrize(("value", "token"), [
    ("X_ACCESS_TOKEN", False),
    ("1234567890123456", False),
    ("/srv/humas/outbox", False),
    ("https://hooks.example/news", False),
    ("v19.0", False),
    ("EAAB" + "x7Zq" * 25, True),
    ("da39a3ee5e6b4b0d3255bfef95601890afd80709", True),
    ("dGhpcyBpcyBhIHNlY3JldCB0b2tlbiE=", True),
    ("https://hooks.example/news?token=abc", True),
    ("9vQmT3xLp2RsWn8KdYb4HcFj", True),
])
def test_what_looks_like_a_token(value, token):
    assert looks_like_token(value) is token


# -- references, not secrets ------------------------------------------------------------

TOKENS = {
    "facebook token": "EAAB" + "x7Zq" * 25,
    "hex": "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "upper hex": "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709",
    "base64": "dGhpcyBpcyBhIHNlY3JldCB0b2tlbiE=",
    "lowercase": "x_access_token",
    "mixed id": "AKIAIOSFODNN7EXAMPLE",
    "spaces": "my token",
}


def channel_rows(office: Office) -> str:
    with office._store.engine.connect() as conn:
        rows = [*conn.execute(sa.text("SELECT * FROM channels")),
                *conn.execute(sa.text("SELECT * FROM events"))]
    return "\n".join(repr(tuple(row)) for row in rows)


@pytest.mark.parametrize("shape", sorted(TOKENS))
def test_a_credential_reference_that_looks_like_a_token_is_refused(office, shape):
    value = TOKENS[shape]
    before = channel_rows(office)
    with pytest.raises(SecretInConfiguration) as caught:
        office.add_channel("x", "outbox", settings={"path": "/tmp/out"},
                           credentials={"access_token": value}, by="admin")
    error = caught.value
    assert (error.channel, error.key, error.field) == ("x", "access_token", "credentials")
    assert "credential 'access_token'" in str(error)
    assert "like X_ACCESS_TOKEN" in str(error)
    assert value not in str(error)
    assert channel_rows(office) == before  # nothing written


@pytest.mark.parametrize(("settings", "key"), [
    ({"token": "abc"}, "token"),
    ({"access_token": "EAAB123"}, "access_token"),
    ({"client_secret": "s"}, "client_secret"),
    ({"password": "hunter2"}, "password"),
    ({"api_key": "k-1"}, "api_key"),
    ({"Api-Key": "k-1"}, "Api-Key"),
    ({"retry": {"secret": "s"}}, "retry.secret"),
    ({"page_id": TOKENS["facebook token"]}, "page_id"),
    ({"url": "https://hooks.example/x?access_token=abc"}, "url"),
    ({"urls": ["https://a.example", "https://b.example/?sig=1&api_key=2"]}, "urls[1]"),
    ({"hash": TOKENS["hex"]}, "hash"),
])
def test_a_secret_in_the_channel_settings_is_refused(office, settings, key):
    before = channel_rows(office)
    with pytest.raises(SecretInConfiguration) as caught:
        office.add_channel("x", "outbox", settings={"path": "/tmp/out", **settings}, by="admin")
    assert (caught.value.key, caught.value.field) == (key, "settings")
    assert f"setting {key!r}" in str(caught.value)
    assert "credential reference" in str(caught.value)
    assert channel_rows(office) == before


def test_ordinary_settings_and_references_are_accepted(office):
    # The fake publisher takes any setting (the outbox refuses the ones it does not take).
    with plugin_registered(fake_publisher_plugin()):
        channel = office.add_channel(
            "x", "fake",
            settings={"path": "/tmp/out", "page_id": "1234567890123456",
                      "api_version": "v19.0", "token_url": "https://api.x.com/2/oauth2/token",
                      "retry": {"jitter": 0}},
            credentials={"access_token": "FISIP_X_ACCESS_TOKEN",
                         "secret": "FISIP_2024_X_SECRET"},
            by="admin")
    assert channel.credentials["secret"] == "FISIP_2024_X_SECRET"


@pytest.mark.parametrize("option", [
    ["--credential", f"access_token={TOKENS['facebook token']}"],
    ["--set", f"access_token={TOKENS['facebook token']}"],
    ["--set", f"page_id={TOKENS['facebook token']}"],
])
def test_the_cli_refuses_a_secret_at_channel_add(office, clock, option):
    result = CliRunner().invoke(cli, ["--db", office_target(office), "channel", "add", "--by",
                       "admin", "x",
                                      "--publisher", "outbox", "--set", "path=/tmp/o", *option],
                                obj={"clock": clock, "environ": {}})
    assert result.exit_code == 1
    assert result.output.startswith("Error: channel 'x': ")
    assert "never put a secret here" in result.output
    assert "[redacted]" not in result.output  # the advice itself survives scrubbing
    assert TOKENS["facebook token"] not in result.output
    assert "x" not in office.channels()


def test_a_channel_failed_hook_sees_the_scrubbed_record(leaky, image):
    office, plugin = leaky
    seen = []

    class Hook:
        from humasflow.hookspecs import hookimpl

        @hookimpl
        def channel_failed(self, office, item, publication):
            seen.append(publication.error_message)

    item = item_ready_to_post(office, text="Dies Natalis", media=[image], channels=["x"])
    plugin.publishers["x"] = FakePublisher(channel="x", fail_with=LEAKS["credential value"]())
    with plugin_registered(Hook()):
        office.post(item.id, by="rina")
    assert seen
    assert all(SECRET not in m for m in seen)


def test_a_posted_receipt_is_recorded_as_given(leaky, image):
    office, plugin = leaky

    class Posting(FakePublisher):
        def publish(self, post, progress=None):
            return Receipt(platform_id="123_456", url="https://facebook.com/123_456")

    plugin.publishers["x"] = Posting(channel="x")
    item = item_ready_to_post(office, text="Dies Natalis", media=[image], channels=["x"])
    pub = office.post(item.id, by="rina").publications["x"]
    assert (pub.platform_id, pub.url) == ("123_456", "https://facebook.com/123_456")
