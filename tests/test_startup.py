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
