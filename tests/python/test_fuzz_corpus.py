"""The fuzz harnesses' seed corpora, replayed through the harnesses without atheris.

Every seed must satisfy the harness's property (it works or is refused with a documented exception
and a one-line message), so that the harnesses stay in step with the code between fuzz runs
(scripts/fuzz; docs/reliability.md).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

FUZZ_DIR = Path(__file__).resolve().parent.parent / "fuzz"
sys.path.insert(0, str(FUZZ_DIR))

SEEDS = [(target.name, seed) for target in sorted((FUZZ_DIR / "corpus").iterdir())
         for seed in sorted(target.iterdir())]


def test_every_harness_has_seeds():
    assert {target for target, _ in SEEDS} == {"gguf", "bundle", "bundle_zip", "edges", "config"}


@pytest.mark.parametrize(("target", "seed"), SEEDS, ids=[f"{target}/{seed.name}" for target, seed in SEEDS])
def test_seed_satisfies_the_property(target, seed, tmp_path, monkeypatch):
    monkeypatch.setenv("ICGT_CACHE_DIR", str(tmp_path))
    harness = importlib.import_module(f"fuzz_{target}")
    harness.test_one_input(seed.read_bytes())


def _raise(error: BaseException) -> None:
    raise error


def test_a_finding_is_reported():
    from fuzz_common import Finding, expect

    with pytest.raises(Finding, match="KeyError escaped"):
        expect(lambda: {}["key"], (ValueError,))
    with pytest.raises(Finding, match="without a one-line message"):
        expect(lambda: _raise(ValueError("two\nlines")), (ValueError,))
    with pytest.raises(Finding, match="UnicodeDecodeError escaped"):
        expect(lambda: b"\xff".decode(), (ValueError,))
    assert expect(lambda: int("3"), (ValueError,)) is True
    assert expect(lambda: int("x"), (ValueError,)) is False
