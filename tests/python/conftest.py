"""Session fixtures: the built-in models exported once into a temporary cache.

ICGT_SLOW_TESTS=1 also runs the checks of Qwen2.5-Coder-1.5B against transformers (its float32 export
and transformers' copy: 7 GB each, about 4.5 minutes on a 2-core CPU), which are skipped otherwise so
that CI stays within its time; a tiny Qwen2 is checked against transformers in every run
(test_architectures.py, test_hf_checkpoints.py).

transformers' own copy of SmolLM2-135M and Gemma 3 270M is loaded once per session and shared by
test_real_internals.py and test_real_models.py: loading it is most of those checks' cost.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from helpers import real_model_missing

import icgt

#: The built-in models whose transformers copy is kept for the session (Qwen2.5-Coder-1.5B, 7 GB in
#: float32, is loaded afresh each time and released by its user).
KEPT_TRANSFORMERS_MODELS = {"smollm2-135m", "gemma3-270m"}


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



@pytest.fixture(scope="session")
def transformers_model():
    """load(name, bundle): transformers' float32 model from the GGUF file the bundle was exported from
    (AutoModelForCausalLM.from_pretrained with gguf_file: transformers reads and dequantises it itself).

    Loaded once per session for the models of KEPT_TRANSFORMERS_MODELS, since loading costs more than
    the checks: transformers' GGUF reader parses the file's metadata, the whole vocabulary, twice
    (on a 2-core AMD EPYC, Zen 3, AVX2 only: about 30 s of CPU for SmolLM2-135M, 60 s for Gemma 3 270M,
    whose vocabulary has 262,144 tokens). Callers choose the attention (set_attn_implementation)
    and must leave no hooks on the model.
    """
    from transformers import AutoModelForCausalLM

    kept = {}

    def load(name: str, bundle: Path):
        if name in kept:
            return kept[name]
        source = Path(icgt.read_bundle_config(bundle)["source"])
        model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name,
                                                     dtype=torch.float32).eval()
        if name in KEPT_TRANSFORMERS_MODELS:
            kept[name] = model
        return model

    yield load
    kept.clear()
