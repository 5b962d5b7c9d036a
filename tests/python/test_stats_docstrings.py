"""The examples in the docstrings of RepresentationStats and EnergyMetrics run and print what they say."""

import doctest

import pytest
import torch

import icgt


def docstring_examples():
    finder = doctest.DocTestFinder()
    for cls in (icgt.RepresentationStats, icgt.EnergyMetrics):
        for test in finder.find(cls, globs={"icgt": icgt, "torch": torch}):
            if test.examples:
                yield pytest.param(test, id=test.name)


@pytest.mark.parametrize("test", docstring_examples())
def test_docstring_example(test):
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0, f"{test.name}: the example's output differs (run with -s to see it)"
