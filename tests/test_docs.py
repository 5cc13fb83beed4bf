"""The documentation cannot rot: its examples run, its site builds, README agrees with CI.

- every ``>>>`` example in a fenced block of ``docs/*.md`` and ``README.md`` runs as a
  doctest and prints what the page says;
- ``mkdocs build --strict`` succeeds (broken links between pages fail it);
- README's Quick start has exactly two shell commands, the second being the command
  ``.ci/run`` runs;
- the doctests in the docstrings of every ``humasflow`` module pass;
- the TOML and Python examples in the docs are valid, the bundled SOP shown in
  ``docs/sop-format.md`` is the bundled file, verbatim, and the example publisher of
  ``docs/publishing.md`` passes the example tests of ``docs/plugins.md``;
- every ``python`` and ``sh`` block of ``docs/*.md`` and ``README.md`` runs, each in a
  fresh temporary folder, unless the comment before it says it continues another, needs
  a named setup, or is not run and why (see ``MARKER`` below);
- ``docs/write-a-publisher.md``'s renames, made in a copy of the template, give a
  publisher that installs and passes its tests, and its table of what a conformance
  subclass sets is ``PublisherConformance``'s whole interface.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, MutableMapping
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

import humasflow
from humasflow.office import Office
from humasflow.sop import BUNDLED_SOP
from humasflow.storage.store import Store

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)[^\n]*$")


def fenced_blocks(text: str) -> Iterator[tuple[str, int, list[str]]]:
    """Yield (language, first body line index, body lines) of each fenced code block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        body_start = j = i + 1
        while j < len(lines) and not (
            lines[j].strip().startswith(fence) and not lines[j].strip().strip(fence[0])
        ):
            j += 1
        yield opening["lang"], body_start, [line[indent:] for line in lines[body_start:j]]
        i = j + 1


def doctest_source(text: str) -> str:
    """The page with everything but fenced ``>>>`` examples blanked out.

    Line numbers stay those of the page, so a failure report points at the right line,
    and a closing fence is never mistaken for expected output.
    """
    kept = [""] * len(text.splitlines())
    for _, start, body in fenced_blocks(text):
        if any(line.startswith(">>>") for line in body):
            kept[start:start + len(body)] = body
    return "\n".join(kept) + "\n"


def close_resources(namespace: MutableMapping[str, Any]) -> None:
    """Close what an example left open (stores, exit stacks), then forget it."""
    for value in list(namespace.values()):
        if isinstance(value, (contextlib.ExitStack, Office, Store)):
            value.close()
    namespace.clear()


def run_doctest(test: doctest.DocTest) -> tuple[int, str]:
    """Run one doctest; return the number of failures and the runner's report."""
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    try:
        runner.run(test, out=report.append, clear_globs=False)
    finally:
        close_resources(test.globs)
    return runner.failures, "".join(report)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_examples_in_the_docs_run(page: Path, tmp_path: Path, monkeypatch) -> None:
    """Each page's ``>>>`` examples, run in order in one namespace, print what they show."""
    monkeypatch.chdir(tmp_path)  # files the examples create land in a fresh folder
    source = doctest_source(page.read_text("utf-8"))
    test = doctest.DocTestParser().get_doctest(
        source, {"__name__": f"docs.{page.stem}"}, page.name, str(page), 0)
    failures, report = run_doctest(test)
    assert failures == 0, report


LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def test_site_builds_strictly(tmp_path: Path) -> None:
    """The site builds without warnings, and every link to a section finds its heading."""
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = []
    for page in sorted(DOCS.glob("*.md")):
        for link in LINK.finditer(page.read_text("utf-8")):
            target = link["target"]
            if "://" in target or "#" not in target:
                continue
            name, _, anchor = target.partition("#")
            stem = Path(name).stem if name else page.stem
            html = site / ("index.html" if stem == "index" else f"{stem}/index.html")
            if not html.is_file() or f'id="{anchor}"' not in html.read_text("utf-8"):
                broken.append(f"{page.name}: {target}")
    assert not broken, "links to missing sections: " + ", ".join(broken)


def test_readme_quick_start_matches_ci() -> None:
    """README's Quick start is two shell commands; the second is what ``.ci/run`` runs."""
    readme = (ROOT / "README.md").read_text("utf-8")
    section = re.search(r"^## Quick start\n(.*?)(?=^## )", readme, re.M | re.S)
    assert section is not None, "README.md has no '## Quick start' section"
    blocks = list(fenced_blocks(section[1]))
    assert [lang for lang, _, _ in blocks] == ["sh", "sh"], blocks
    commands = [[line for line in body if line.strip()] for _, _, body in blocks]
    assert all(len(c) == 1 for c in commands), commands
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text("utf-8").splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert commands[1][0].strip() == ci_lines[-1]


def test_readme_says_when_the_suite_uses_postgresql() -> None:
    """README names the server the suite's PostgreSQL tests use, the variable that
    changes it, and what happens without one, as tests/conftest.py does it."""
    conftest = (ROOT / "tests" / "conftest.py").read_text("utf-8")
    default = re.search(r'"HUMASFLOW_TEST_POSTGRES", "([^"]+)"', conftest)
    assert default is not None, "tests/conftest.py no longer has a default PostgreSQL URL"
    assert 'os.environ.get("CI", "").lower() == "true"' in conftest
    readme = " ".join((ROOT / "README.md").read_text("utf-8").split())
    assert f"`{default[1]}`" in readme
    assert "`HUMASFLOW_TEST_POSTGRES`" in readme
    assert "skipped" in readme
    assert "with `CI=true` they fail" in readme


MODULES = sorted(
    m.name for m in pkgutil.walk_packages(humasflow.__path__, "humasflow."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str, tmp_path: Path, monkeypatch) -> None:
    """The ``>>>`` examples in each module's docstrings pass."""
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    failures = []
    for test in doctest.DocTestFinder().find(module):
        if test.examples:
            failed, report = run_doctest(test)
            if failed:
                failures.append(report)
    assert not failures, "\n".join(failures)


def test_sop_examples_are_valid() -> None:
    """Every complete SOP shown in the docs loads; the bundled one is shown verbatim."""
    bundled = resources.files("humasflow").joinpath("sops", BUNDLED_SOP).read_text("utf-8")
    shown = []
    for page in sorted(DOCS.glob("*.md")):
        for lang, start, body in fenced_blocks(page.read_text("utf-8")):
            text = "\n".join(body) + "\n"
            if lang == "toml" and re.search(r"^format = ", text, re.M):
                humasflow.parse_sop(text, source=f"{page.name}, line {start + 1}")
                shown.append(text)
    assert bundled in shown, "docs/sop-format.md must show the bundled SOP file verbatim"
    assert len(shown) >= 2, "docs/sop-format.md shows a custom SOP too"


def python_block(page: str, marker: str) -> str:
    """The first ``python`` block of ``docs/<page>`` that contains ``marker``."""
    for lang, _, body in fenced_blocks((DOCS / page).read_text("utf-8")):
        text = "\n".join(body) + "\n"
        if lang == "python" and marker in text:
            return text
    raise AssertionError(f"docs/{page} has no python block containing {marker!r}")


def test_example_publisher_passes_the_example_tests(tmp_path: Path) -> None:
    """The publisher in publishing.md passes the plugin tests shown in plugins.md."""
    (tmp_path / "humasflow_webhook.py").write_text(
        python_block("publishing.md", "class WebhookPublisher"), "utf-8")
    (tmp_path / "test_webhook.py").write_text(
        python_block("plugins.md", "def test_a_post_reaches_the_hook"), "utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
         "--rootdir", str(tmp_path), str(tmp_path / "test_webhook.py")],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout, result.stdout


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_examples_compile(page: Path) -> None:
    """Every ``python`` block in the docs is valid Python (even those not run)."""
    for lang, start, body in fenced_blocks(page.read_text("utf-8")):
        if lang == "python":
            compile("\n".join(body), f"{page.name}, line {start + 1}", "exec")


# -- every python and sh block runs, or says why not --------------------------------------
#
# A block runs on its own, in a fresh temporary working directory. The line just before
# its opening fence may say otherwise, in an HTML comment (invisible on the site):
#
#   <!-- docs-test: continues -->         after the page's previous python block, in its
#                                         namespace and folder
#   <!-- docs-test: given NAME -->        after the setup GIVEN[NAME] below
#   <!-- docs-test: not run: REASON -->   not run (a fragment, a real server...), and why

MARKER = re.compile(r"^<!-- docs-test: (?P<kind>continues|given|not run)(?::)?\s*"
                    r"(?P<arg>.*?)\s*-->$")

_OFFICE = """
import contextlib

import humasflow
import humasflow.plugins
from humasflow.testing import FakePublisher, plugin_registered, staffed_office

humasflow.plugins.load_plugins()

class _Platforms:  # stand-ins for the X and Instagram distributions
    @humasflow.hookimpl
    def register_publishers(self, register):
        for name in ("x", "instagram"):
            register(name, lambda channel, context: FakePublisher(channel=channel.name))

_platforms = contextlib.ExitStack()
# An installed platform distribution (plugins/humasflow-x, plugins/humasflow-instagram…)
# steps aside for the stand-in while the page runs, so the two never register the same
# name.
humasflow.plugins.load_plugins()
for _name in ("x", "instagram"):
    _real = humasflow.plugins.pm.get_plugin(_name)
    if _real is not None:
        humasflow.plugins.pm.unregister(name=_name)
        _platforms.callback(humasflow.plugins.pm.register, _real, _name)
_platforms.enter_context(plugin_registered(_Platforms()))
office = humasflow.open("humas.db")
staffed_office(office)          # administrator admin, staff rina and sari, coordinator budi
office.add_actor("tika", "Tika Rahayu", roles=["admin"], by="admin")
office.add_channel("outbox", "outbox", settings={"path": "outbox"}, by="admin")
office.add_channel("x", "x", by="admin")
office.add_channel("ig", "instagram", by="admin")
"""

#: What a block marked ``given NAME`` runs after (in the same namespace and folder).
GIVEN: dict[str, str] = {
    "an office": _OFFICE,
    "an item at the concept step": _OFFICE + """
item = office.new_item("Dies Natalis FISIP", by="rina", channels=["x", "ig"])
""",
    "an item waiting for approval": _OFFICE + """
from humasflow.testing import sample_image
item = office.new_item("Dies Natalis FISIP", by="rina", channels=["outbox"])
office.complete(item.id, by="rina", text="Selamat Dies Natalis ke-40 FISIP UB!")
office.complete(item.id, by="rina", notes="Canva template")
office.complete(item.id, by="rina", media=[sample_image("poster.png")])
item_id = item.id
""",
    "the page's own SOP file": """
from pathlib import Path
ft_sop = next("\\n".join(body) + "\\n" for lang, _, body in fenced_blocks(page_text)
              if lang == "toml" and 'number = "EX/FT/HUMAS/01"' in "\\n".join(body))
Path("ft-social-media.toml").write_text(ft_sop, "utf-8")
""",
    "a database URL": """
DATABASE_URL = "humas.db"   # a deployment reads it from its settings
""",
}


def marker(lines: list[str], start: int) -> tuple[str, str] | None:
    """The ``docs-test`` marker on the line before the fence of the block at ``start``."""
    found = MARKER.match(lines[start - 2].strip()) if start >= 2 else None
    return (found["kind"], found["arg"]) if found else None


def runnable_blocks(lang: str) -> Iterator[tuple[Path, list[tuple[int, str, str]]]]:
    """Per page, chains of (line, code, setup) to run in one namespace and folder."""
    for page in PAGES:
        text = page.read_text("utf-8")
        lines = text.splitlines()
        chain: list[tuple[int, str, str]] = []
        for block_lang, start, body in fenced_blocks(text):
            if block_lang != lang:
                continue
            mark = marker(lines, start)
            code = "\n".join(body) + "\n"
            if mark is not None and mark[0] == "not run":
                continue
            if mark is not None and mark[0] == "continues":
                assert chain, f"{page.name}:{start + 1} continues, but no block runs before it"
                chain.append((start + 1, code, ""))
                continue
            if chain:
                yield page, chain
            setup = GIVEN[mark[1]] if mark is not None else ""
            chain = [(start + 1, code, setup)]
        if chain:
            yield page, chain


def test_every_marker_is_understood() -> None:
    """A ``docs-test`` comment that is misspelt, gives no reason, or names an unknown
    setup fails, instead of silently running (or skipping) its block."""
    problems = []
    for page in PAGES:
        lines = page.read_text("utf-8").splitlines()
        for n, line in enumerate(lines):
            if "docs-test" not in line:
                continue
            found = MARKER.match(line.strip())
            where = f"{page.name}:{n + 1}"
            if found is None:
                problems.append(f"{where}: not a docs-test marker: {line.strip()}")
            elif found["kind"] == "not run" and len(found["arg"]) < 10:
                problems.append(f"{where}: say why the block is not run")
            elif found["kind"] == "given" and found["arg"] not in GIVEN:
                problems.append(f"{where}: no setup named {found['arg']!r}")
            elif not FENCE.match(lines[n + 1]) if n + 1 < len(lines) else True:
                problems.append(f"{where}: a marker goes on the line just before a fence")
    assert not problems, "\n".join(problems)


PYTHON_CHAINS = list(runnable_blocks("python"))


@pytest.mark.parametrize(("page", "chain"), PYTHON_CHAINS,
                         ids=[f"{p.name}:{c[0][0]}" for p, c in PYTHON_CHAINS])
def test_python_examples_run(page: Path, chain: list[tuple[int, str, str]],
                             tmp_path: Path, monkeypatch) -> None:
    """Each ``python`` block (with the blocks that continue it) runs without an error, in
    a fresh folder, as a reader would paste it."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    setup = chain[0][2]
    try:
        if setup:
            namespace.update(page_text=page.read_text("utf-8"), fenced_blocks=fenced_blocks)
            exec(compile(setup, f"<setup of {page.name}:{chain[0][0]}>", "exec"), namespace)
            del namespace["page_text"], namespace["fenced_blocks"]
        for line, code, _ in chain:
            exec(compile(code, f"{page.name}, line {line}", "exec"), namespace)
    finally:
        close_resources(namespace)


SH_CHAINS = list(runnable_blocks("sh"))


@pytest.mark.parametrize(("page", "chain"), SH_CHAINS,
                         ids=[f"{p.name}:{c[0][0]}" for p, c in SH_CHAINS])
def test_sh_examples_run(page: Path, chain: list[tuple[int, str, str]],
                         tmp_path: Path) -> None:
    """Each ``sh`` block runs in a fresh folder with this environment's ``humasflow``."""
    env = {**os.environ, "TMPDIR": str(tmp_path), "PATH": os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    for line, code, _ in chain:
        result = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path,
                                env=env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, f"{page.name}, line {line}:\n{result.stdout}" \
            f"{result.stderr}"


# -- docs/write-a-publisher.md, followed to the letter -------------------------------------

TEMPLATE = ROOT / "plugins" / "_template"
CODE = re.compile(r"`([^`]+)`")


def rename_table() -> list[tuple[str, str]]:
    """The (from, to) pairs of the guide's rename table, in its order."""
    text = (DOCS / "write-a-publisher.md").read_text("utf-8")
    section = text[text.index("Rename, in the copy"):text.index("The renamed `pyproject.toml`")]
    pairs = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and CODE.fullmatch(cells[1]) and CODE.fullmatch(cells[2]):
            pairs.append((cells[1][1:-1], cells[2][1:-1]))
    return pairs


def install_in(site: Path, project: Path) -> None:
    """What ``pip install -e`` leaves behind for the entry points: a dist-info naming the
    distribution and its ``humasflow`` entry points (read from ``pyproject.toml``)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    meta = tomllib.loads((project / "pyproject.toml").read_text("utf-8"))["project"]
    info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n", "utf-8")
    points = meta["entry-points"]["humasflow"]
    (info / "entry_points.txt").write_text(
        "[humasflow]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()), "utf-8")


def test_the_guide_s_renames_make_a_working_publisher_of_the_template(tmp_path: Path) -> None:
    """Copy the template, make exactly the renames of the guide's table, install it: it
    loads under its new name, no old name is left, and its own tests pass."""
    pairs = rename_table()
    assert pairs, "docs/write-a-publisher.md has no rename table"
    copy = tmp_path / "humasflow-campusnews"
    shutil.copytree(TEMPLATE, copy, ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info", ".pytest_cache"))
    texts = [("pyproject.toml",), ("src", "**", "*.py"), ("tests", "*.py")]
    for old, new in pairs:
        if (copy / old).exists():
            (copy / old).rename(copy / new)
            continue
        changed = False
        for pattern in texts:
            for path in copy.glob(str(Path(*pattern))):
                text = path.read_text("utf-8")
                if old in text:
                    path.write_text(text.replace(old, new), "utf-8")
                    changed = True
        assert changed, f"the guide renames {old!r}, which the template does not contain"
    left = [f"{path.relative_to(copy)}: {name}"
            for pattern in texts for path in copy.glob(str(Path(*pattern)))
            for name in ("humasflow_example", "humasflow-example", "ExamplePublisher",
                         'PUBLISHER = "example"')
            if name in path.read_text("utf-8")]
    assert not left, f"the guide's renames leave old names behind: {left}"
    site = tmp_path / "site"
    install_in(site, copy)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(copy / "src")])}
    env.pop("HUMASFLOW_LOAD_PLUGINS", None)
    listed = subprocess.run(
        [sys.executable, "-c", "from humasflow.cli import main; main(['plugins'])"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "BROKEN" not in listed.stdout, listed.stdout
    assert not listed.stderr, listed.stderr
    assert re.search(r"^Publishers: .*\bcampusnews\b", listed.stdout, re.M), listed.stdout
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=copy, env=env, capture_output=True, text=True, check=False)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert sorted(p.name for p in (copy / "tests").glob("test_*.py")) == [
        "test_campusnews_conformance.py", "test_campusnews_publisher.py"]


def test_the_guide_names_everything_a_conformance_subclass_can_set() -> None:
    """The guide's table of PublisherConformance's interface is complete."""
    from humasflow.testing.conformance import PublisherConformance

    text = (DOCS / "write-a-publisher.md").read_text("utf-8")
    section = text[text.index("Everything a subclass sets or overrides"):
                   text.index("The checks, by the names `not_applicable` uses:")]
    named = {m.group(1).split("(")[0] for m in re.finditer(r"^\| `([^`]+)`", section, re.M)}
    interface = {name for name in vars(PublisherConformance)
                 if not name.startswith(("_", "test_", "pytest_")) and name != "harness"}
    interface.add("wire")  # the fixture the subclass provides
    assert interface - named == set(), "missing from the guide's table"
    assert named - interface == set(), "in the guide's table but not in the class"
