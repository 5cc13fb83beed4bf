"""``import humasflow`` is cheap: public names are imported the first time they are used.

The same for the command: its help, and each command's help, import click, the
configuration (for the language to speak) and the errors, and nothing a command needs
only when it runs.
"""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import humasflow
from humasflow import cli, models

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


def test_a_store_loads_only_its_own_database_dialect(tmp_path):
    """Each SQLAlchemy dialect costs tens of milliseconds to import: a SQLite store
    never loads PostgreSQL's, and importing the office loads neither."""
    probe = ("import sys\nfrom humasflow.office import Office\n"
             "from humasflow.storage.store import Store\n"
             "print(sorted(m for m in sys.modules if m.startswith('sqlalchemy.dialects.')"
             " and m.count('.') == 2 and not m.split('.')[2].startswith('_')))\n"
             f"Store({str(tmp_path / 'hf.db')!r}).close()\n"
             "print(sorted(m for m in sys.modules if m.startswith('sqlalchemy.dialects.')"
             " and m.count('.') == 2 and not m.split('.')[2].startswith('_')))\n")
    before, after = subprocess.run([sys.executable, "-I", "-c", probe], capture_output=True,
                                   text=True, check=True).stdout.splitlines()
    assert before == "[]"
    assert after == "['sqlalchemy.dialects.sqlite']"


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
    assert {"sqlalchemy", "transitions", "pluggy"} <= _loaded_after(code)


#: What a help may import of humasflow: the command, the configuration it reads for
#: the language, and what those import.
HELP_MODULES = {"humasflow", "humasflow.cli", "humasflow.clock", "humasflow.config",
                "humasflow.errors", "humasflow.i18n"}


def _commands(group, path=()):
    for name, command in sorted(group.commands.items()):
        yield (*path, name)
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))


# Every help in one interpreter, in turn: what each one imported first is named with it
# (the first, with what importing the command imported).
EVERY_HELP = """
import contextlib, io, sys
heavy = {heavy!r}
def loaded():
    return {{m for m in sys.modules if m.split(".")[0] in heavy
             or (m.startswith("humasflow") and m not in {allowed!r})}}
before = loaded()
from humasflow.cli import main
for argv in {helps!r}:
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            main(list(argv))
        except SystemExit as exc:
            assert exc.code in (0, None), (argv, exc.code)
    new = loaded() - before
    if new:
        print(" ".join(argv), "imported", ", ".join(sorted(new)))
        before |= new
"""


def test_every_commands_help_imports_only_what_the_help_needs():
    # Neither the store, the state machine, the plugins and their publishers, rich,
    # nor humasflow's models, SOP, evaluation or credentials.
    helps = [("--help",), ("--version",),
             *((*command, "--help") for command in _commands(cli.cli))]
    assert len(helps) > 40  # every command and subcommand, not just the top level
    code = EVERY_HELP.format(heavy=(*HEAVY, "humasflow_x", "humasflow_facebook",
                                    "humasflow_instagram", "humasflow_example"),
                             allowed=HELP_MODULES, helps=helps)
    done = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_the_commands_administrator_role_is_the_models():
    # Repeated in the command so that its help need not import the models.
    assert cli.ADMIN_ROLE == models.ADMIN_ROLE


def _type_checking_imports(path: Path) -> dict[str, str]:
    """``name: module`` for every ``from module import name`` under ``if TYPE_CHECKING``."""
    found: dict[str, str] = {}
    for node in ast.parse(path.read_text("utf-8")).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom):
                    for alias in statement.names:
                        found[alias.asname or alias.name] = statement.module or ""
    return found


def test_the_names_the_command_imports_when_used_are_what_type_checkers_see():
    # Each stand-in resolves to the object a type checker was shown under that name.
    seen = _type_checking_imports(Path(cli.__file__))
    stand_ins = {name: value for name, value in vars(cli).items()
                 if isinstance(value, cli._ImportedWhenUsed)}
    assert {"load_sop", "scrub", "registry"} <= set(stand_ins)
    for name, stand_in in stand_ins.items():
        real = stand_in._target()
        module = importlib.import_module(stand_in._module)
        if stand_in._name is None:
            assert real is module, name
        else:
            assert stand_in._name == name
            assert seen[name] == stand_in._module, name
            assert real is getattr(module, name)


def test_type_checkers_see_every_public_name_from_where_it_resolves():
    seen = _type_checking_imports(Path(humasflow.__file__))
    assert set(seen) == set(humasflow.__all__)
    assert seen == humasflow._SOURCES
