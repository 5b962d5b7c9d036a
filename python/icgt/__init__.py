"""icgt: in-context graph tracing in the representations of language models.

Example:
    >>> import icgt
    >>> grid = icgt.Graph.square_grid(4, 4)
    >>> walks = icgt.WalkSampler(grid, seed=0).random_walks(16, 1400, start="per_node")
    >>> walks.shape
    (16, 1400)
"""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch  # noqa: F401  (loads LibTorch before libicgt, which links it)

from . import _icgt
from ._icgt import (
    EMBEDDING_LAYER,
    NOT_A_NODE,
    AttentionScore,
    EnergyMetrics,
    Graph,
    HeadAblation,
    ProbeResult,
    RepresentationStats,
    WalkSampler,
)
from .bundles import BUILTIN_MODELS, bundle_for, cache_dir, read_bundle_config
from .experiment import run_experiment, run_sweep
from .graphs import from_networkx, to_networkx
from .probe import ActivationProbe
from .tokens import DEFAULT_WORDS, PROTOCOL_WORDS, SplitWordsError, concept_token_ids, load_tokenizer

try:
    __version__ = version("icgt")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

#: Install prefix of libicgt for C++ users: cmake -DCMAKE_PREFIX_PATH=<this> finds icgt.
cmake_prefix_path = str(Path(_icgt.__file__).resolve().parent)

Graph.from_networkx = staticmethod(from_networkx)
Graph.to_networkx = to_networkx

__all__ = [
    "BUILTIN_MODELS", "DEFAULT_WORDS", "EMBEDDING_LAYER", "NOT_A_NODE", "PROTOCOL_WORDS", "ActivationProbe",
    "AttentionScore", "EnergyMetrics", "Graph", "HeadAblation", "ProbeResult", "RepresentationStats", "SplitWordsError", "WalkSampler", "bundle_for",
    "cache_dir", "cmake_prefix_path", "concept_token_ids", "load_tokenizer", "read_bundle_config", "run_experiment",
    "run_sweep",
]
