"""Session fixtures: the built-in models exported once into a temporary cache."""

from __future__ import annotations

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
    return _real_bundle("qwen2.5-coder-1.5b", real_cache)

