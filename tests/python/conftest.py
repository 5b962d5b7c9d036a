"""Session fixtures: the built-in models exported once into a temporary cache.

ICGT_SLOW_TESTS=1 also runs the checks of Qwen2.5-Coder-1.5B against transformers (its float32 export
and transformers' copy: 7 GB each, about 4.5 minutes on a 2-core CPU), which are skipped otherwise so
that CI stays within its time; a tiny Qwen2 is checked against transformers in every run
(test_architectures.py, test_hf_checkpoints.py).
"""

from __future__ import annotations

import os

import pytest
from helpers import real_model_missing

import icgt


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory):
    """A cache folder shared by every test that uses the real models (each is exported once)."""
    return tmp_path_factory.mktemp("icgt-cache")


def _real_bundle(name: str, cache):
    reason = real_model_missing(name)
    if reason:
        pytest.skip(reason)
    return icgt.bundle_for(name, cache=cache, progress=False)


@pytest.fixture(scope="session")
def smollm2_bundle(real_cache):
    return _real_bundle("smollm2-135m", real_cache)


@pytest.fixture(scope="session")
def gemma3_bundle(real_cache):
    return _real_bundle("gemma3-270m", real_cache)


@pytest.fixture(scope="session")
def qwen25_coder_bundle(real_cache):
    if os.environ.get("ICGT_SLOW_TESTS") != "1":
        pytest.skip("Qwen2.5-Coder-1.5B's checks run with ICGT_SLOW_TESTS=1 (about 4.5 minutes)")
    return _real_bundle("qwen2.5-coder-1.5b", real_cache)

