"""Type stubs for icgt._icgt (partial: the sections below describe their classes fully; names
without a section here are typed as Any)."""

from typing import Any, Literal, Sequence, Union

import numpy as np
import torch

def __getattr__(name: str) -> Any: ...

# Anything torch.as_tensor accepts: a torch.Tensor is used as it is, a numpy array is shared.
ArrayLike = Union[torch.Tensor, np.ndarray, Sequence[Any]]

# --- RepresentationStats -------------------------------------------------------------------------

class RepresentationStats:
    class ClassMeans:
        @property
        def means(self) -> torch.Tensor: ...
        @property
        def counts(self) -> torch.Tensor: ...
        @property
        def positions(self) -> torch.Tensor: ...

    class PrincipalComponents:
        def __init__(
            self,
            components: ArrayLike,
            explained_variance_ratio: ArrayLike,
            projections: ArrayLike,
            mean: ArrayLike,
        ) -> None: ...
        @property
        def components(self) -> torch.Tensor: ...
        @property
        def explained_variance_ratio(self) -> torch.Tensor: ...
        @property
        def projections(self) -> torch.Tensor: ...
        @property
        def mean(self) -> torch.Tensor: ...

    def __init__(self, num_nodes: int) -> None: ...
    @property
    def num_nodes(self) -> int: ...
    @staticmethod
    def strided_positions(length: int, stride: int, first: int = 0) -> list[int]: ...
    def class_means(
        self, residuals: ArrayLike, nodes: ArrayLike, window: int, positions: ArrayLike
    ) -> RepresentationStats.ClassMeans: ...
    def class_means_per_sequence(
        self, residuals: ArrayLike, nodes: ArrayLike, window: int, positions: ArrayLike
    ) -> RepresentationStats.ClassMeans: ...
    def principal_components(
        self, class_means: ArrayLike, num_components: int = 2
    ) -> RepresentationStats.PrincipalComponents: ...
    @staticmethod
    def align_snapshots(
        components: RepresentationStats.PrincipalComponents,
        alignment: Literal["sign_flip", "procrustes"] = "procrustes",
    ) -> RepresentationStats.PrincipalComponents: ...

# --- EnergyMetrics -------------------------------------------------------------------------------

EnergyKind = Literal["raw", "normalized", "scale_invariant"]

class EnergyMetrics:
    class NullBaseline:
        @property
        def observed(self) -> torch.Tensor: ...
        @property
        def mean(self) -> torch.Tensor: ...
        @property
        def sd(self) -> torch.Tensor: ...
        @property
        def z_score(self) -> torch.Tensor: ...

    class RuleFollowing:
        @property
        def full_vocabulary(self) -> torch.Tensor: ...
        @property
        def renormalized(self) -> torch.Tensor: ...
        @property
        def mean_full_vocabulary(self) -> torch.Tensor: ...
        @property
        def mean_renormalized(self) -> torch.Tensor: ...
        @property
        def scored(self) -> torch.Tensor: ...

    class SpectralAlignment:
        @property
        def principal_angle_cosines(self) -> torch.Tensor: ...
        @property
        def r_squared(self) -> torch.Tensor: ...

    def __init__(self, graph: Any) -> None: ...  # graph: icgt.Graph
    @property
    def graph(self) -> Any: ...  # icgt.Graph
    def dirichlet_energy(self, representations: ArrayLike, kind: EnergyKind = "normalized") -> torch.Tensor: ...
    def energy_null_baseline(
        self,
        representations: ArrayLike,
        kind: EnergyKind = "normalized",
        num_relabellings: int = 1000,
        seed: int = 0,
    ) -> EnergyMetrics.NullBaseline: ...
    def rule_following_accuracy(
        self, node_probabilities: ArrayLike, nodes: ArrayLike, scored: ArrayLike | None = None
    ) -> EnergyMetrics.RuleFollowing: ...
    def spectral_alignment(self, class_means: ArrayLike, num_components: int = 2) -> EnergyMetrics.SpectralAlignment: ...
    def graph_distance_correlation(self, representations: ArrayLike) -> torch.Tensor: ...
