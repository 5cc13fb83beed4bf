"""The configuration file: where it is found, what it may hold, and precedence.

A flag wins over the environment, the environment over the file, the file over the
default; ``humasflow config`` shows each value and where it came from; a file that holds
an unknown key, a wrong value or a secret is refused with the file, the key and the fix.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import humasflow
from humasflow.cli import cli
from humasflow.config import load_config, user_config_path
from humasflow.errors import ConfigurationError


def run(*args: str, env=None, code: int = 0):
    result = CliRunner().invoke(cli, list(args), env=env, obj={"environ": {}})
    assert result.exit_code == code, (result.output, result.exception)
    return result


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_without_a_file_every_setting_is_its_default(tmp_path):
    assert load_config().path is None
    out = run("config").output
    assert "Configuration file: none" in out
    assert "store" in out
    assert "humasflow.db" in out
    assert "default" in out


def test_the_working_directory_file_is_found_and_paths_are_relative_to_it(tmp_path):
    write(tmp_path / "humasflow.toml", 'store = "data/office.db"\norg = "fisip"\n')
    config = load_config()
    assert config.path == tmp_path / "humasflow.toml"
    out = run("config").output
    assert str(tmp_path / "data" / "office.db") in out
    assert "fisip" in out
    assert str(tmp_path / "humasflow.toml") in out


def test_the_users_config_folder_is_used_when_the_working_directory_has_none(tmp_path):
    assert str(user_config_path()).startswith(str(tmp_path / "xdg-config"))
    write(user_config_path(), 'org = "fib"\n')
    assert load_config().get("org") == "fib"
    write(tmp_path / "humasflow.toml", 'org = "fisip"\n')
    assert load_config().get("org") == "fisip"


def test_flag_beats_environment_beats_file_beats_default(tmp_path):
    write(tmp_path / "humasflow.toml", 'org = "from-file"\nbusy_timeout = 12\n')
    out = run("config").output
    assert "from-file" in out
    assert "12.0" in out
    out = run("config", env={"HUMASFLOW_ORG": "from-env"}).output
    assert "from-env" in out
    assert "environment" in out
    assert "from-file" not in out
    out = run("--org", "from-flag", "config", env={"HUMASFLOW_ORG": "from-env"}).output
    assert "from-flag" in out
    assert "flag" in out
    assert "from-env" not in out


def test_config_names_a_file_and_a_missing_one_is_an_error(tmp_path):
    named = write(tmp_path / "elsewhere" / "office.toml", 'org = "fisip"\n')
    assert "fisip" in run("--config", str(named), "config").output
    assert "fisip" in run("config", env={"HUMASFLOW_CONFIG": str(named)}).output
    result = run("--config", str(tmp_path / "nope.toml"), "config", code=1)
    assert "does not exist" in result.output
    assert "nope.toml" in result.output


@pytest.mark.parametrize(("text", "words"), [
    ('stor = "x.db"\n', ["stor", "unknown setting", "store"]),
    ('language = "fr"\n', ["language", '"id" or "en"']),
    ('timezone = "Mars/Olympus"\n', ["timezone", "not a time zone"]),
    ('busy_timeout = -1\n', ["busy_timeout", "seconds"]),
    ('[media]\nmax_bytes = 0\n', ["media.max_bytes", "positive"]),
    ('[media.host]\nfolder = "pub"\nbase_url = "ftp://x"\n', ["media.host.base_url", "http"]),
    ('[mail]\npassword = "hunter2"\n', ["mail.password", "secrets file"]),
    ('[mail]\nport = 70000\n', ["mail.port", "65535"]),
    ('[mail]\nauthserv_id = ""\n', ["mail.authserv_id", "non-empty"]),
    ('[calendar]\nworkdays = ["monday"]\n', ["calendar.workdays", "mon"]),
    ('[calendar]\nhours = ["16:00", "07:30"]\n', ["calendar.hours", "before"]),
    ('[channels.x]\nsettings = { access_token = "abc" }\n', ["channels.x", "access_token"]),
    ('[channels.x]\ncredentials = { token = "EAAGm0PX4ZCpsBAKZAZBqYx7" }\n',
     ["channels.x", "token"]),
    ('org = \n', ["not valid TOML"]),
])
def test_a_wrong_file_is_refused_naming_the_key_and_the_fix(tmp_path, text, words):
    path = write(tmp_path / "humasflow.toml", text)
    with pytest.raises(ConfigurationError) as caught:
        load_config()
    message = str(caught.value)
    assert str(path) in message
    for word in words:
        assert word in message
    result = run("config", code=1)
    assert "Error:" in result.output
    assert "Traceback" not in result.output
    assert "EAAGm0PX4ZCpsBAKZAZBqYx7" not in result.output


def test_the_store_org_and_channels_come_from_the_file(tmp_path):
    write(tmp_path / "humasflow.toml", '''
store = "office.db"
org = "fisip"

[channels.outbox]
publisher = "outbox"
settings = { path = "out" }
''')
    run("init", "--admin", "admin", "--name", "Admin")
    assert (tmp_path / "office.db").exists()
    assert "outbox" in run("channel", "add", "outbox", "--by", "admin").output
    office = humasflow.open(str(tmp_path / "office.db"), org="fisip", establish=False)
    try:
        channel = office.channels()["outbox"]
        assert channel.publisher == "outbox"
        assert Path(channel.settings["path"]).name == "out"
    finally:
        office.close()
    result = run("channel", "add", "nowhere", "--by", "admin", code=1)
    assert "--publisher" in result.output
    assert "[channels.nowhere]" in result.output


def test_the_media_host_is_configured_without_python(tmp_path, monkeypatch):
    write(tmp_path / "humasflow.toml", '''
[media]
max_bytes = 1000000

[media.host]
folder = "public"
base_url = "https://media.example.ac.id/humas/"
''')
    config = load_config()
    host = config.media_host()
    assert host is not None
    assert host.base_url == "https://media.example.ac.id/humas/"
    assert Path(host.folder) == tmp_path / "public"
    out = run("config").output
    assert "media.host" in out
    assert "https://media.example.ac.id/humas/" in out
    assert "1000000" in out
    # The command hands both to the office it opens.
    run("init", "--admin", "admin", "--name", "Admin")
    opened = {}
    real_open = humasflow.open

    def spy(*args, **kwargs):
        opened.update(kwargs)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(humasflow, "open", spy)
    run("list")
    assert opened["media_max_bytes"] == 1000000
    assert opened["media_host"].base_url == "https://media.example.ac.id/humas/"
