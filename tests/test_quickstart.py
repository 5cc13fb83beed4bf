"""The README's Quick start works in a fresh clone and a fresh virtual environment.

The clone is of the committed HEAD. The first command runs whole (set up + demo). The
second command's set-up runs whole and its test run is replaced by a collection of the
suite (``pytest --collect-only``): running the whole suite inside itself would recurse,
and CI runs that very command, unchanged, in a fresh clone.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def quickstart_commands() -> list[str]:
    text = (ROOT / "README.md").read_text("utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [c.strip() for c in re.findall(r"```sh\n(.*?)```", section, flags=re.S)]


def _fresh_clone(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: there is nothing to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
           and not k.startswith("HUMASFLOW_")}
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p != venv_bin)
    # The demo's temporary folder (and pip's) lands in the test's folder, removed with it.
    (tmp_path / "tmp").mkdir()
    env["TMPDIR"] = str(tmp_path / "tmp")
    return clone, env


def test_readme_has_exactly_two_commands():
    """The Quick start holds exactly two one-line shell commands."""
    commands = quickstart_commands()
    assert len(commands) == 2
    assert all("\n" not in c for c in commands)


def test_first_command_sets_up_and_runs_the_demo(tmp_path):
    """Command 1 on a fresh clone: installs, then the demo posts one item to the outbox."""
    clone, env = _fresh_clone(tmp_path)
    result = subprocess.run(quickstart_commands()[0], shell=True, cwd=clone, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "outbox: posted" in result.stdout
    assert "Audit: OK" in result.stdout
    written = re.search(r"The outbox post was written to (\S+)", result.stdout)
    assert written, result.stdout[-2000:]
    assert Path(written.group(1)).is_file()
    assert Path(written.group(1)).is_relative_to(tmp_path / "tmp")


def test_second_command_sets_up_and_collects_the_suite(tmp_path):
    """Command 2 on a fresh clone: installs the test extra and the template plugin, and
    the suite is collected without errors."""
    clone, env = _fresh_clone(tmp_path)
    command = quickstart_commands()[1]
    assert command.endswith(".venv/bin/python -m pytest")
    command += " --collect-only -q -p no:cacheprovider"
    result = subprocess.run(command, shell=True, cwd=clone, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"\d+ tests collected", result.stdout), result.stdout[-2000:]
