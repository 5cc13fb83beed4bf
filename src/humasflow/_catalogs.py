"""Keeping the translation catalogs: ``python -m humasflow._catalogs``.

Babel's extractor finds the messages marked with ``_``, ``N_`` and ``ngettext``; this
module adds the command's help texts (``help=`` and ``short_help=`` of its options and
commands, and the commands' docstrings, as click shows them) and click's own messages
(usage, errors, ``--help``), which the command translates while it runs. Then it updates
each language's ``.po`` file from the template and compiles it to ``.mo``::

    python -m humasflow._catalogs          # extract, update, compile
    python -m humasflow._catalogs --check  # fail if a message has no translation

Translations are written in ``src/humasflow/locale/<lang>/LC_MESSAGES/humasflow.po``.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir, extract_python
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from humasflow.i18n import DOMAIN, LANGUAGES, LOCALE_DIR

KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
PACKAGE = Path(__file__).parent
#: The click modules whose messages the command shows (see ``cli._CLICK_MODULES``).
CLICK_MODULES = ("core", "decorators", "exceptions", "formatting", "parser", "types",
                 "termui", "utils")


def extract_cli_help(fileobj: Any, keywords: Any, comment_tags: Any,
                     options: Any) -> Iterator[tuple[int, str | None, Any, list[str]]]:
    """A Babel extraction method: the marked messages of a module, plus the
    ``help``/``short_help`` strings and the docstrings of click commands in it."""
    source = fileobj.read()
    found: Iterator[Any] = extract_python(io.BytesIO(source), keywords, comment_tags, options)
    yield from found
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg in ("help", "short_help"):
                    text = _literal(keyword.value)
                    if text:
                        yield node.lineno, None, text, []
        elif isinstance(node, ast.FunctionDef) and any(
                _is_click_command(d) for d in node.decorator_list):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                # What click shows: the cleaned docstring, up to a form feed.
                yield node.lineno, None, inspect.cleandoc(doc).split("\f")[0].strip(), []


def _literal(node: ast.expr) -> str | None:
    """A string literal (implicitly concatenated parts included), else ``None``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def _is_click_command(decorator: ast.expr) -> bool:
    func = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(func, ast.Attribute) and func.attr in ("command", "group")


def plugin_template(domain: str, package_dir: Path) -> Catalog:
    """The messages a plugin marks in its package (with ``_``, ``N_``, ``ngettext``)."""
    catalog = Catalog(project=domain, domain=domain)
    for _filename, _lineno, message, comments, context in extract_from_dir(
            str(package_dir), [("**.py", "python")], keywords=KEYWORDS,
            strip_comment_tags=True):
        catalog.add(message, None, [], auto_comments=comments, context=context)
    return catalog


def template() -> Catalog:
    """Every message humasflow shows: its own, its help texts, and click's."""
    catalog = Catalog(project="humasflow", copyright_holder="the humasflow authors",
                      domain=DOMAIN)
    method_map = [("cli.py", "humasflow._catalogs:extract_cli_help"),
                  ("**.py", "python")]
    for _filename, _lineno, message, comments, context in extract_from_dir(
            str(PACKAGE), method_map, keywords=KEYWORDS, strip_comment_tags=True):
        catalog.add(message, None, [], auto_comments=comments, context=context)
    import click

    click_dir = Path(click.__file__).parent
    for name in CLICK_MODULES:
        path = click_dir / f"{name}.py"
        with path.open("rb") as handle:
            calls: Iterator[Any] = extract_python(handle, {"_": None, "ngettext": (1, 2)},
                                                  [], {})
            for _lineno, _func, message, comments in calls:
                if isinstance(message, tuple):
                    # extract_python gives every argument of the call; keep the two forms.
                    message = message[:2]
                if message and (not isinstance(message, tuple) or all(message)):
                    catalog.add(message, None, [], auto_comments=comments)
    return catalog


def po_path(lang: str, domain: str = DOMAIN, locale_dir: Path = LOCALE_DIR) -> Path:
    return locale_dir / lang / "LC_MESSAGES" / f"{domain}.po"


def read_catalog(lang: str, domain: str = DOMAIN, locale_dir: Path = LOCALE_DIR) -> Catalog:
    with po_path(lang, domain, locale_dir).open("rb") as handle:
        return read_po(handle, locale=lang, domain=domain)


def compiled(catalog: Catalog) -> bytes:
    out = io.BytesIO()
    write_mo(out, catalog)
    return out.getvalue()


def update(compendia: list[Path] | None = None, *, domain: str = DOMAIN,
           package_dir: Path | None = None) -> None:
    """Update every language's catalog from the template and compile it.

    ``compendia``: other ``.po`` files whose translations fill messages the catalog
    does not translate yet (for translations made apart from the catalog). ``domain``
    and ``package_dir``: a plugin's catalog, kept in ``package_dir/locale``.
    """
    locale_dir = LOCALE_DIR if package_dir is None else package_dir / "locale"
    pot = template() if package_dir is None else plugin_template(domain, package_dir)
    for lang in LANGUAGES[1:]:
        path = po_path(lang, domain, locale_dir)
        catalog = read_catalog(lang, domain, locale_dir) if path.exists() else Catalog(
            locale=lang, domain=domain, project=domain)
        catalog.update(pot, no_fuzzy_matching=True)
        for compendium in compendia or ():
            with compendium.open("rb") as handle:
                extra = read_po(handle, locale=lang, domain=DOMAIN)
            for message in extra:
                ours = catalog.get(message.id) if message.id else None
                if (ours is not None and not _translated(ours.string)
                        and _translated(message.string) and not message.fuzzy):
                    ours.string = message.string
        out = io.BytesIO()
        write_po(out, catalog, width=100, omit_header=False, ignore_obsolete=True,
                 sort_output=True, include_lineno=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(out.getvalue())
        path.with_suffix(".mo").write_bytes(compiled(read_catalog(lang, domain, locale_dir)))


def _translated(string: Any) -> bool:
    """Whether a message's translation is there (every form of a plural one)."""
    if isinstance(string, tuple):
        return bool(string) and all(string)
    return bool(string)


def missing(lang: str, *, domain: str = DOMAIN, package_dir: Path | None = None) -> list[str]:
    """The messages of the template that ``lang``'s catalog does not translate (a
    plugin's, given its ``domain`` and ``package_dir``)."""
    if package_dir is None:
        catalog, pot = read_catalog(lang), template()
    else:
        catalog = read_catalog(lang, domain, package_dir / "locale")
        pot = plugin_template(domain, package_dir)
    gaps = []
    for message in pot:
        if not message.id:
            continue
        found = catalog.get(message.id)
        if found is None or found.fuzzy or not _translated(found.string):
            gaps.append(message.id if isinstance(message.id, str) else message.id[0])
    return gaps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m humasflow._catalogs")
    parser.add_argument("--check", action="store_true",
                        help="only report messages without a translation")
    parser.add_argument("--compendium", action="append", type=Path, default=[],
                        help="a .po file whose translations fill untranslated messages")
    parser.add_argument("--domain", default=DOMAIN, help="a plugin's gettext domain")
    parser.add_argument("--package-dir", type=Path,
                        help="the plugin's package folder (its catalogs go in locale/)")
    args = parser.parse_args(argv)
    if (args.domain == DOMAIN) != (args.package_dir is None):
        parser.error("--domain and --package-dir go together (a plugin's catalog)")
    if not args.check:
        update(args.compendium, domain=args.domain, package_dir=args.package_dir)
    status = 0
    for lang in LANGUAGES[1:]:
        gaps = missing(lang, domain=args.domain, package_dir=args.package_dir)
        for gap in gaps:
            print(f"{lang}: no translation for {gap!r}", file=sys.stderr)
        status = status or (1 if gaps else 0)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
