"""resolve_factory: module and file specs resolve to the right callable; every failure is a clear error."""

import sys
from pathlib import Path

import pytest
import torch

from geometry_probe.exceptions import GeometryProbeError, InputFileError, InvalidInputError
from geometry_probe.factories import call_factory, resolve_factory

MODELS = Path(__file__).parent / "_models.py"


def test_module_spec_resolves_a_dotted_attribute():
    assert resolve_factory("json:JSONDecoder.decode").__qualname__ == "JSONDecoder.decode"
    assert resolve_factory("os.path:join") is __import__("os").path.join


def test_file_spec_builds_the_model_and_the_data():
    model = call_factory(f"{MODELS}:make_model")
    assert type(model).__name__ == "Net"
    assert [name for name, _ in model.named_children()] == ["encoder", "dropout", "head"]
    loader = call_factory(f"{MODELS}:make_data")
    assert sum(len(x) for x, _ in loader) == 120


def test_a_file_is_imported_once_and_can_import_its_neighbours(tmp_path):
    (tmp_path / "helper_geoprobe_test.py").write_text("WIDTH = 5\n")
    (tmp_path / "factory.py").write_text(
        "import torch\nfrom helper_geoprobe_test import WIDTH\n"
        "def make():\n    return torch.nn.Linear(2, WIDTH)\n")
    first = resolve_factory(f"{tmp_path}/factory.py:make")
    assert first().out_features == 5
    assert resolve_factory(f"{tmp_path}/factory.py:make") is first


def test_module_that_does_not_exist():
    with pytest.raises(InvalidInputError, match="cannot import 'no_such_pkg.models'.*no module named 'no_such_pkg'"):
        resolve_factory("no_such_pkg.models:make", what="--model")


def test_missing_file_and_missing_colon():
    with pytest.raises(InputFileError, match="nope.py: no such Python file"):
        resolve_factory("some/dir/nope.py:make")
    with pytest.raises(InvalidInputError, match="expected PKG.MODULE:FACTORY"):
        resolve_factory("torch.nn.Linear")
    with pytest.raises(InvalidInputError, match="expected PKG.MODULE:FACTORY"):
        resolve_factory("torch.nn:")


def test_errors_raised_while_importing_name_type_file_and_line(tmp_path):
    (tmp_path / "boom.py").write_text("x = 1\ny = x / 0\n")
    with pytest.raises(InvalidInputError, match=r"ZeroDivisionError: division by zero \(.*boom\.py, line 2\)"):
        resolve_factory(f"{tmp_path}/boom.py:make")
    (tmp_path / "syntax.py").write_text("def make(:\n")
    with pytest.raises(InvalidInputError, match="SyntaxError"):
        resolve_factory(f"{tmp_path}/syntax.py:make")
    (tmp_path / "deps.py").write_text("import not_installed_geoprobe_dep\n")
    with pytest.raises(InvalidInputError, match="No module named 'not_installed_geoprobe_dep'"):
        resolve_factory(f"{tmp_path}/deps.py:make")
    assert not [m for m in sys.modules if m.startswith("_geoprobe_user_boom")]


def test_missing_or_uncallable_attribute():
    with pytest.raises(InvalidInputError, match=r"has no attribute 'make_modle'.*close matches: \['make_model'"):
        resolve_factory(f"{MODELS}:make_modle")
    with pytest.raises(InvalidInputError, match=r"N_SAMPLES is not callable \(got int\)"):
        resolve_factory(f"{MODELS}:N_SAMPLES")


def test_errors_are_geometry_probe_errors():
    for spec in ("no_such_pkg:make", "nofile.py:make", "json:nothing_here"):
        with pytest.raises(GeometryProbeError):
            resolve_factory(spec)


def test_factory_results_are_independent_objects():
    a, b = call_factory(f"{MODELS}:make_model"), call_factory(f"{MODELS}:make_model")
    assert a is not b and torch.equal(a.head.weight, b.head.weight)
