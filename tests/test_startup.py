"""``import humasflow`` is cheap: public names are imported the first time they are used."""

import subprocess
import sys

import pytest

import humasflow

HEAVY = ("sqlalchemy", "transitions", "requests", "pluggy", "rich")


def _loaded_after(code: str) -> set[str]:
    probe = (f"import sys\n{code}\n"
             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True,
                         text=True, check=True).stdout
    return set(out.split())


def test_importing_humasflow_loads_none_of_the_heavy_dependencies():
    assert _loaded_after("import humasflow") == set()


def test_using_a_name_imports_what_it_needs():
    assert "sqlalchemy" in _loaded_after("import humasflow; humasflow.Office")


def test_every_public_name_resolves_and_is_listed():
    for name in humasflow.__all__:
        assert getattr(humasflow, name) is not None, name
    assert set(humasflow.__all__) <= set(dir(humasflow))
    from humasflow import Office, open  # noqa: F401  (the from-import form works too)


def test_a_submodule_is_an_attribute_and_a_typo_is_an_attribute_error():
    assert humasflow.errors.HumasflowError is humasflow.HumasflowError
    with pytest.raises(AttributeError, match="Ofice"):
        humasflow.Ofice  # noqa: B018


# The help goes to a buffer: the probe's output is the list of modules.
HELP = ("import contextlib, io, sys; sys.argv = ['humasflow', '--help']\n"
        "from humasflow.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main()\n"
        "    except SystemExit as exc:\n        assert exc.code in (0, None), exc.code")


def test_the_commands_help_loads_none_of_the_heavy_dependencies():
    # `humasflow --help` (and a mistyped option) answer without the store, the
    # publishers, the plugins, rich or transitions: each command imports what it needs.
    assert _loaded_after(HELP) == set()
    assert _loaded_after("import humasflow.cli") == set()


def test_the_version_loads_none_of_them_either():
    code = HELP.replace("['humasflow', '--help']", repr(["humasflow", "--version"]))
    assert _loaded_after(code) == set()


def test_a_command_still_imports_what_it_needs(tmp_path):
    code = (f"import os; os.chdir({str(tmp_path)!r})\n"
            + HELP.replace("['humasflow', '--help']",
                           repr(["humasflow", "--db", str(tmp_path / "h.db"), "init",
                                 "--admin", "admin", "--name", "Admin"])))
    assert {"sqlalchemy", "transitions"} <= _loaded_after(code)
