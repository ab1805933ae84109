"""The formula tests catch every mutation of benchmarks/mutations.py: each one-line mutation of
the script, loaded as a fresh module in this process, makes a test of test_algorithm.py fail."""
import importlib.util

import pytest
from helpers import ROOT

spec = importlib.util.spec_from_file_location("mutations", ROOT / "benchmarks" / "mutations.py")
mutations = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutations)


def test_the_unmutated_script_passes_the_formula_tests():
    """Else every mutation would look caught."""
    assert mutations.first_failing_test(mutations.SCRIPT.read_text(encoding="utf-8")) is None


@pytest.mark.parametrize("old, new", [m[1:] for m in mutations.MUTATIONS], ids=[m[0] for m in mutations.MUTATIONS])
def test_the_formula_tests_catch_the_mutation(old, new):
    assert mutations.first_failing_test(mutations.mutated_source(old, new)) is not None, "the mutation survived"
