"""The public API: ``humasflow.__all__`` is sorted, names only what exists, and exports
every public name a user of the library needs from the modules behind it.

"Sorted" means the isort-style order ruff's RUF022 enforces: SCREAMING_CASE constants
first, then CamelCase classes, then the rest, each group in plain (case-sensitive)
alphabetical order.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import humasflow
from humasflow import errors

# The modules whose public names users need without importing them one by one, and the
# names of each that must be exported (None: everything in the module's __all__).
PUBLIC = {
    "humasflow.errors": None,
    "humasflow.models": None,
    "humasflow.office": None,
    "humasflow.clock": None,
    "humasflow.publishing.contract": None,
    "humasflow.actions": ("CorrectiveAction",),
    "humasflow.audit": ("AuditReport", "Finding"),
    "humasflow.evaluation": ("Breach", "StepRun"),
    "humasflow.calendar": ("WorkingCalendar",),
    "humasflow.report": ("Report",),
    "humasflow.sop": ("SOP", "Header", "Label", "Role", "Step", "bundled_sop", "load_sop",
                      "parse_sop"),
    "humasflow.hookspecs": ("hookimpl",),
    "humasflow.credentials": ("CredentialSource", "CredentialWarning", "EnvironmentSource",
                              "SecretsFile"),
    "humasflow.mediastore": ("MediaInfo", "MediaStore"),
}


def isort_key(name: str) -> tuple[int, str]:
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def test_all_is_sorted_isort_style():
    assert list(humasflow.__all__) == sorted(humasflow.__all__, key=isort_key)


def test_all_has_no_duplicates_and_no_private_names():
    assert len(set(humasflow.__all__)) == len(humasflow.__all__)
    assert not [n for n in humasflow.__all__ if n.startswith("_")]


def test_every_name_in_all_exists():
    missing = [n for n in humasflow.__all__ if not hasattr(humasflow, n)]
    assert missing == []


@pytest.mark.parametrize("module_name", sorted(PUBLIC))
def test_every_public_name_users_need_is_exported(module_name):
    module = importlib.import_module(module_name)
    names = PUBLIC[module_name] or module.__all__
    missing = [n for n in names if n not in humasflow.__all__]
    assert missing == [], f"{module_name} names missing from humasflow.__all__"
    for name in names:
        assert getattr(humasflow, name) is getattr(module, name), name


def _all_modules():
    for info in pkgutil.walk_packages(humasflow.__path__, "humasflow."):
        if info.name.endswith(".cli") or ".testing" in info.name:
            continue
        yield importlib.import_module(info.name)


def test_every_error_class_anywhere_in_humasflow_is_exported():
    found = set()
    for module in _all_modules():
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, errors.HumasflowError) \
                    and obj.__module__.startswith("humasflow"):
                found.add(name)
    assert found >= set(errors.__all__)
    assert sorted(found - set(humasflow.__all__)) == []


def test_every_error_is_rooted_in_humasflow_error():
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.HumasflowError), name


def test_the_exception_tree_in_the_docstring_names_every_error():
    doc = errors.__doc__ or ""
    assert [n for n in errors.__all__ if n not in doc] == []


def test_star_import_gives_exactly_all():
    namespace: dict[str, object] = {}
    exec("from humasflow import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(humasflow.__all__)


def test_storage_writes_are_not_public_api(tmp_path):
    """The office is the only writer: the store that writes rows without checks is not
    exported, and an office does not hand it out (it reads through its own methods)."""
    assert not hasattr(humasflow, "Store")
    assert "Store" not in humasflow.__all__
    office = humasflow.Office(str(tmp_path / "h.db"))
    try:
        assert not hasattr(office, "store")
        assert office.location == str(tmp_path / "h.db")
        assert office.schema_version >= 1
        assert office.events() == []
        sibling = office.for_org("fib")
        assert sibling.org == "fib"
        assert sibling.store_uuid == office.store_uuid
    finally:
        office.close()
