"""Rule: `humasflow mail process` and `mail poll` answer replies as the library does, with
translated messages, and say clearly what is missing from the configuration."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from humasflow.cli import cli
from humasflow.office import Office
from humasflow.testing import sample_image, staffed_office

from .test_mail_answers import SECRET, reply, to_approval, token_for


@pytest.fixture
def setup(tmp_path):
    db = tmp_path / "humasflow.db"
    office = Office(str(db), environ={})  # the real clock, as the command has
    office.establish(by="Dekan")
    staffed_office(office)
    office.add_channel("outbox", "outbox", settings={"path": str(tmp_path / "outbox")},
                       by="admin")
    config = tmp_path / "humasflow.toml"
    config.write_text(f'store = "{db}"\n[mail]\nsender = "humas@example.ac.id"\n')
    yield office, config, tmp_path
    office.close()


def run(config, *args, input=None, env=None, code=0):
    result = CliRunner().invoke(
        cli, ["--config", str(config), *args], input=input,
        env={"HUMASFLOW_MAIL_SECRET": SECRET.decode(), **(env or {})})
    assert result.exit_code == code, result.output
    return result


def test_mail_process_approves_from_a_file_and_refuses_from_standard_input(setup):
    office, config, tmp = setup
    item = to_approval(office, sample_image(tmp / "poster.png"))
    eml = tmp / "reply.eml"
    eml.write_bytes(reply(token_for(office, item)))
    result = run(config, "--lang", "en", "mail", "process", str(eml))
    assert f"item {item.id} approved" in result.output
    assert office.item(item.id).state == "produce"
    again = run(config, "--lang", "en", "mail", "process", str(eml))
    assert "processed already" in again.output
    refused = run(config, "--lang", "id", "mail", "process", "-",
                  input=reply(None, mid="<none@example.ac.id>"), code=1)
    assert "no_token" in refused.output
    assert "kode persetujuan" in refused.output  # the answer, in Indonesian


def test_without_the_secret_mail_process_says_what_to_add(setup):
    _office, config, tmp = setup
    eml = tmp / "reply.eml"
    eml.write_bytes(reply(None))
    result = CliRunner().invoke(cli, ["--config", str(config), "--lang", "en", "mail",
                                      "process", str(eml)], env={})
    assert result.exit_code == 1
    assert "HUMASFLOW_MAIL_SECRET" in result.output
    assert "Traceback" not in result.output


def test_mail_poll_without_an_imap_host_says_so(setup):
    _office, config, _tmp = setup
    result = run(config, "--lang", "en", "mail", "poll", "--once", code=1)
    assert "mail.imap_host" in result.output
