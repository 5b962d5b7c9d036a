#include "icgt/energy_metrics.hpp"

#include "bindings.hpp"
#include "tensor_arguments.hpp"

namespace icgt::python {
namespace {

EnergyMetrics::Energy parse_kind(const std::string& kind, const char* function) {
  if (kind == "raw") return EnergyMetrics::Energy::Raw;
  if (kind == "normalized") return EnergyMetrics::Energy::Normalized;
  if (kind == "scale_invariant") return EnergyMetrics::Energy::ScaleInvariant;
  throw ValueError(std::string(function) + ": kind must be 'raw', 'normalized' or 'scale_invariant', got '" + kind +
                   "'");
}

// class_means_at: pairs (window, positions), each positions a 1-D sequence of integers.
std::vector<EnergyMetrics::Snapshots> snapshots_argument(const py::handle& value, const char* function) {
  std::vector<EnergyMetrics::Snapshots> snapshots;
  const auto wrong = [&](const std::string& what) {
    return TypeError(std::string(function) + ": class_means_at must be a sequence of (window, positions) pairs, " +
                     what);
  };
  if (!py::isinstance<py::sequence>(value) || py::isinstance<py::str>(value)) {
    throw wrong("got " + py::str(py::type::of(value)).cast<std::string>());
  }
  const auto entries = py::reinterpret_borrow<py::sequence>(value);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const py::object entry = entries[i];
    const std::string name = "class_means_at[" + std::to_string(i) + "]";
    if (!py::isinstance<py::sequence>(entry) || py::len(entry) != 2 || !py::isinstance<py::int_>(entry[py::int_(0)])) {
      throw wrong("but " + name + " is " + py::repr(entry).cast<std::string>());
    }
    snapshots.push_back({entry[py::int_(0)].cast<std::int64_t>(),
                         integer_list_argument(entry[py::int_(1)], function, (name + ".positions").c_str())});
  }
  return snapshots;
}

std::string sizes(const at::Tensor& tensor) { return py::str(py::tuple(py::cast(tensor.sizes().vec()))); }

}  // namespace

void register_energy_metrics(py::module_& m) {
  py::class_<EnergyMetrics> metrics(m, "EnergyMetrics", R"doc(How well representations fit a graph, and how well a model follows its edges.

Representations are [..., nodes, d] tensors with any leading dimensions: the class means
[layers, snapshots, nodes, hidden] of RepresentationStats.class_means give energy over
context length for every layer in one call. A row that is all NaN is an absent node and
makes its result NaN. Work happens on the tensors' device; results are torch tensors
there, float32 (float64 for float64 input).

Example:
    >>> import torch, icgt
    >>> metrics = icgt.EnergyMetrics(icgt.Graph.ring(4))
    >>> square = torch.tensor([[1.0, 0], [0, 1], [-1, 0], [0, -1]])  # the ring drawn as a square
    >>> metrics.dirichlet_energy(square, "raw").item(), metrics.dirichlet_energy(square).item()
    (16.0, 1.0)
)doc");

  py::class_<EnergyMetrics::NullBaseline>(metrics, "NullBaseline",
                                          "The energy beside its distribution under random relabellings of the nodes.")
      .def_readonly("observed", &EnergyMetrics::NullBaseline::observed, "[...]: the energy of the representations.")
      .def_readonly("mean", &EnergyMetrics::NullBaseline::mean, "[...]: mean energy over the relabellings.")
      .def_readonly("sd", &EnergyMetrics::NullBaseline::sd, "[...]: their standard deviation (n - 1 denominator).")
      .def_readonly("p_value", &EnergyMetrics::NullBaseline::p_value,
                    "[...]: (1 + relabellings with energy <= observed) / (1 + num_relabellings).")
      .def_readonly("z_score", &EnergyMetrics::NullBaseline::z_score,
                    "[...]: (observed - mean) / sd; large and negative means graph-like.")
      .def("__repr__", [](const EnergyMetrics::NullBaseline& b) {
        return "EnergyMetrics.NullBaseline(shape=" + sizes(b.observed) + ")";
      });

  py::class_<EnergyMetrics::RuleFollowing>(metrics, "RuleFollowing",
                                           "Probability mass on the valid next nodes, per position and batch mean.")
      .def_readonly("full_vocabulary", &EnergyMetrics::RuleFollowing::full_vocabulary,
                    "[batch, length]: mass on the neighbours under the full-vocabulary softmax; NaN where unscored.")
      .def_readonly("renormalized", &EnergyMetrics::RuleFollowing::renormalized,
                    "[batch, length]: the same mass renormalised over the node tokens; NaN where unscored.")
      .def_readonly("mean_full_vocabulary", &EnergyMetrics::RuleFollowing::mean_full_vocabulary,
                    "[length]: mean over the scored sequences; NaN where none is scored.")
      .def_readonly("mean_renormalized", &EnergyMetrics::RuleFollowing::mean_renormalized,
                    "[length]: mean over the scored sequences; NaN where none is scored.")
      .def_readonly("scored", &EnergyMetrics::RuleFollowing::scored, "bool [batch, length]: the positions that count.")
      .def("__repr__", [](const EnergyMetrics::RuleFollowing& r) {
        return "EnergyMetrics.RuleFollowing(shape=" + sizes(r.full_vocabulary) + ")";
      });

  py::class_<EnergyMetrics::SpectralAlignment>(metrics, "SpectralAlignment",
                                               "Top principal components of class means against z2..z(k+1).")
      .def_readonly("principal_angle_cosines", &EnergyMetrics::SpectralAlignment::principal_angle_cosines,
                    "[..., k], descending: cosines of the principal angles between the span of the top-k PC scores "
                    "and that of z2..z(k+1) in R^nodes; 1 means the same subspace.")
      .def_readonly("r_squared", &EnergyMetrics::SpectralAlignment::r_squared,
                    "[..., k]: R^2 of the least-squares fit of each PC's scores from z2..z(k+1).")
      .def("__repr__", [](const EnergyMetrics::SpectralAlignment& a) {
        return "EnergyMetrics.SpectralAlignment(shape=" + sizes(a.r_squared) + ")";
      });

  py::class_<EnergyMetrics::SpectralProfile>(metrics, "SpectralProfile",
                                             "The share of the centred class means' variance on each Laplacian "
                                             "eigenvalue (D - A), low = smooth on the graph.")
      .def_readonly("eigenvalues", &EnergyMetrics::SpectralProfile::eigenvalues,
                    "float64 [K]: the distinct Laplacian eigenvalues, ascending (the first is 0).")
      .def_readonly("multiplicities", &EnergyMetrics::SpectralProfile::multiplicities,
                    "int64 [K]: how many eigenvectors share each eigenvalue.")
      .def_readonly("shares", &EnergyMetrics::SpectralProfile::shares,
                    "[..., K]: the share of the centred means' variance in each eigenspace, summing to 1; NaN "
                    "where a node is absent or all means coincide.")
      .def_readonly("eigenvectors", &EnergyMetrics::SpectralProfile::eigenvectors,
                    "float64 [nodes, nodes]: the eigenvectors as columns, by ascending eigenvalue.")
      .def_readonly("eigenvector_shares", &EnergyMetrics::SpectralProfile::eigenvector_shares,
                    "[..., nodes]: the share on each eigenvector (within a repeated eigenvalue, depends on the "
                    "solver's choice of basis).")
      .def("__repr__", [](const EnergyMetrics::SpectralProfile& p) {
        return "EnergyMetrics.SpectralProfile(shape=" + sizes(p.shares) + ")";
      });

  py::class_<EnergyMetrics::EnergyOverContext>(metrics, "EnergyOverContext",
                                               "Energy of class means over context length, with the class means "
                                               "taken in the same pass.")
      .def_readonly("energy", &EnergyMetrics::EnergyOverContext::energy,
                    "[..., snapshots]: the energy at every snapshot; NaN where a node is absent from the window.")
      .def_readonly("counts", &EnergyMetrics::EnergyOverContext::counts,
                    "int64 [snapshots, nodes]: activations behind each class mean.")
      .def_readonly("positions", &EnergyMetrics::EnergyOverContext::positions,
                    "int64 [snapshots]: the snapshot positions t.")
      .def_readonly("class_means", &EnergyMetrics::EnergyOverContext::class_means,
                    "list of RepresentationStats.ClassMeans, one per entry of class_means_at.")
      .def_readonly("spectral_profile", &EnergyMetrics::EnergyOverContext::spectral_profile,
                    "SpectralProfile of the same class means (shares [..., snapshots, K]) when asked for with "
                    "spectral_profile=True, else None.")
      .def("__repr__", [](const EnergyMetrics::EnergyOverContext& c) {
        return "EnergyMetrics.EnergyOverContext(shape=" + sizes(c.energy) +
               ", class_means=" + std::to_string(c.class_means.size()) + ")";
      });

  metrics.def(py::init<Graph>(), py::arg("graph"),
              "Metrics against this graph.\n\n>>> icgt.EnergyMetrics(icgt.Graph.square_grid(4, 4)).graph.num_edges\n24")
      .def_property_readonly("graph", &EnergyMetrics::graph, "The graph the metrics measure against.")
      .def(
          "dirichlet_energy",
          [](const EnergyMetrics& e, const py::handle& representations, const std::string& kind) {
            const char* function = "EnergyMetrics.dirichlet_energy";
            const at::Tensor x = tensor_argument(representations, function, "representations");
            const auto energy = parse_kind(kind, function);
            py::gil_scoped_release release;
            return e.dirichlet_energy(x, energy);
          },
          py::arg("representations"), py::arg("kind") = "normalized",
          R"doc(Dirichlet energy of representations [..., nodes, d] -> [...].

All kinds sum over ordered node pairs (i, j), A the adjacency:
- "raw": sum_ij A_ij ||x_i - x_j||^2 (each edge twice), the paper's formula;
- "normalized" (default): the paper's plotted variant, X / ||X||_F without centring, then
  0.5 * sum_ij A_ij * mean over dimensions of (x_i - x_j)^2; collapsing lowers it;
- "scale_invariant": mean squared edge length over mean squared distance between distinct
  nodes. Scaling, translating, rotating or collapsing cannot lower it; its mean under
  random relabelling is exactly 1; its minimum, lambda_2 (n - 1) / (2 |E|), is reached by
  the Laplacian eigenvectors of lambda_2. All nodes at one point give NaN (0 / 0), as an
  absent node does; a collapse has a "raw" energy of 0, an absent node a NaN row.

>>> metrics = icgt.EnergyMetrics(icgt.Graph.ring(4))
>>> square = torch.tensor([[1.0, 0], [0, 1], [-1, 0], [0, -1]])
>>> metrics.dirichlet_energy(square, "scale_invariant").item()
0.75
>>> metrics.dirichlet_energy(torch.stack([square, 10 * square]), "scale_invariant").tolist()
[0.75, 0.75]
)doc")
      .def(
          "energy_over_context",
          [](const EnergyMetrics& e, const py::handle& residuals, const py::handle& nodes, std::int64_t window,
             const py::handle& positions, const std::string& kind, const py::handle& class_means_at,
             bool spectral_profile) {
            const char* function = "EnergyMetrics.energy_over_context";
            const at::Tensor residual_tensor = tensor_argument(residuals, function, "residuals");
            const at::Tensor node_tensor = tensor_argument(nodes, function, "nodes");
            const std::vector<std::int64_t> position_list = integer_list_argument(positions, function, "positions");
            const auto energy = parse_kind(kind, function);
            const auto snapshots = snapshots_argument(class_means_at, function);
            py::gil_scoped_release release;
            return e.energy_over_context(residual_tensor, node_tensor, window, position_list, energy, snapshots,
                                         spectral_profile);
          },
          py::arg("residuals"), py::arg("nodes"), py::arg("window"), py::arg("positions"),
          py::arg("kind") = "normalized", py::arg("class_means_at") = py::tuple(), py::kw_only(),
          py::arg("spectral_profile") = false,
          R"doc(Dirichlet energy over context length straight from a residual stream, in one pass.

The energy (kind as in dirichlet_energy) of the class means that
RepresentationStats.class_means(residuals, nodes, window, positions) would give, for every
snapshot and leading (layer) index, computed from the window sums as they go by without
writing the means out. class_means_at: (window, positions) pairs whose class means the
same pass returns (say a wide window at a few snapshots for PCA), so that the activations
are read once in all. Arguments and errors as for class_means; each class_means_at entry
is checked like window and positions. spectral_profile=True: the same pass also decomposes
every snapshot's class means on the Laplacian eigenvectors (as spectral_profile does).
Returns EnergyOverContext: energy [..., snapshots] (NaN where a node is absent), counts,
positions, class_means (one ClassMeans per class_means_at entry) and spectral_profile
(shares [..., snapshots, K], or None when not asked for).

>>> grid = icgt.Graph.square_grid(4, 4)
>>> walks = icgt.WalkSampler(grid, seed=0).random_walks(16, 300, start="per_node")
>>> residuals = torch.randn(2, 16, 300, 8)  # [layers, batch, length, hidden]
>>> metrics = icgt.EnergyMetrics(grid)
>>> sweep = metrics.energy_over_context(residuals, walks, 20, range(0, 300, 10), class_means_at=[(200, [250, 299])])
>>> sweep.energy.shape, sweep.class_means[0].means.shape
(torch.Size([2, 30]), torch.Size([2, 2, 16, 8]))
>>> means = icgt.RepresentationStats(16).class_means(residuals, walks, 20, range(0, 300, 10)).means
>>> torch.allclose(sweep.energy, metrics.dirichlet_energy(means), equal_nan=True)
True
>>> profile = metrics.energy_over_context(residuals, walks, 20, range(0, 300, 10), spectral_profile=True).spectral_profile
>>> profile.shares.shape, torch.allclose(profile.shares, metrics.spectral_profile(means).shares, equal_nan=True)
(torch.Size([2, 30, 9]), True)
)doc")
      .def(
          "energy_null_baseline",
          [](const EnergyMetrics& e, const py::handle& representations, const std::string& kind,
             const py::handle& num_relabellings, const py::handle& seed) {
            const char* function = "EnergyMetrics.energy_null_baseline";
            const at::Tensor x = tensor_argument(representations, function, "representations");
            const auto energy = parse_kind(kind, function);
            const auto relabellings = integer_argument<std::int64_t>(num_relabellings, function, "num_relabellings", 2);
            const auto seed_value = integer_argument<std::uint64_t>(seed, function, "seed");
            py::gil_scoped_release release;
            return e.energy_null_baseline(x, energy, relabellings, seed_value);
          },
          py::arg("representations"), py::arg("kind") = "normalized", py::arg("num_relabellings") = 1000,
          py::arg("seed") = 0,
          R"doc(The energy against the same energy after random relabellings of the nodes.

Relabellings are uniform permutations from icgt's seeded generator (Fisher-Yates; one
draw shared by all leading indices), so a seed gives the same baseline everywhere.
Returns NullBaseline with observed, mean, sd (n - 1 denominator) and z_score, each [...].
A representation that follows the graph has a large negative z_score; one unrelated to
it lands near 0.

>>> metrics = icgt.EnergyMetrics(icgt.Graph.ring(4))
>>> square = torch.tensor([[1.0, 0], [0, 1], [-1, 0], [0, -1]])
>>> null = metrics.energy_null_baseline(square, "scale_invariant", num_relabellings=2000, seed=0)
>>> round(null.mean.item(), 1), null.observed.item() < null.mean.item()
(1.0, True)
)doc")
      .def(
          "rule_following_accuracy",
          [](const EnergyMetrics& e, const py::handle& node_probabilities, const py::handle& nodes,
             const py::handle& scored) {
            const char* function = "EnergyMetrics.rule_following_accuracy";
            const at::Tensor probabilities = tensor_argument(node_probabilities, function, "node_probabilities");
            const at::Tensor node_tensor = tensor_argument(nodes, function, "nodes");
            std::optional<at::Tensor> scored_tensor;
            if (!scored.is_none()) scored_tensor = tensor_argument(scored, function, "scored");
            py::gil_scoped_release release;
            return e.rule_following_accuracy(probabilities, node_tensor, scored_tensor);
          },
          py::arg("node_probabilities"), py::arg("nodes"), py::arg("scored") = py::none(),
          R"doc(Probability mass on the valid next nodes (the neighbours of each position's node).

node_probabilities: [batch, length, nodes], the next-token probabilities of the node
tokens (node k's token at index k) under the full-vocabulary softmax. nodes: integer
[batch, length] with icgt.NOT_A_NODE at positions that hold no node (never scored).
scored: optional bool [batch, length], e.g. from WalkSampler.neighbour_pairs: only its
true positions count. Returns RuleFollowing: full_vocabulary and renormalized (over the
node tokens, where uniform guessing already scores degree / nodes), each [batch, length]
with NaN where unscored, their means over the batch [length], and the scored mask.

>>> metrics = icgt.EnergyMetrics(icgt.Graph.ring(4))
>>> p = torch.full((1, 2, 4), 0.2)  # 0.8 of the mass on the node tokens, spread evenly
>>> acc = metrics.rule_following_accuracy(p, torch.tensor([[0, icgt.NOT_A_NODE]]))
>>> [round(v, 3) for v in acc.full_vocabulary[0, :1].tolist()], acc.mean_renormalized.tolist()[0], acc.scored.tolist()
([0.4], 0.5, [[True, False]])
)doc")
      .def(
          "spectral_alignment",
          [](const EnergyMetrics& e, const py::handle& class_means, const py::handle& num_components,
             const py::handle& first_component) {
            const char* function = "EnergyMetrics.spectral_alignment";
            const at::Tensor means = tensor_argument(class_means, function, "class_means");
            const auto k = integer_argument<std::int64_t>(num_components, function, "num_components");
            const auto first = integer_argument<std::int64_t>(first_component, function, "first_component");
            py::gil_scoped_release release;
            return e.spectral_alignment(means, k, first);
          },
          py::arg("class_means"), py::arg("num_components") = 2, py::arg("first_component") = 0,
          R"doc(The energy-minimisation hypothesis: k PCs of class means against z2..z(k+1).

class_means: [..., nodes, hidden]. The PCs are the top k (first_component 0) or those from
the (first_component + 1)-th on: first_component=1 compares PCs 2-3, as the paper's ring
figures draw them. Returns SpectralAlignment: principal_angle_cosines [..., k] between the
span of those PCs' scores and the span of the Laplacian (D - A) eigenvectors z2..z(k+1)
(as Graph.spectral_embedding), and r_squared [..., k], the R^2 of a least-squares fit of
each PC's scores from z2..z(k+1). NaN where a node is absent. A num_components that splits
a repeated eigenvalue is a ValueError.

>>> grid = icgt.Graph.square_grid(4, 4)
>>> drawing = torch.tensor(grid.spectral_embedding(2).eigenvectors) @ torch.randn(2, 50, dtype=torch.float64)
>>> icgt.EnergyMetrics(grid).spectral_alignment(drawing, 2).principal_angle_cosines.round(decimals=6).tolist()
[1.0, 1.0]
)doc")
      .def(
          "spectral_profile",
          [](const EnergyMetrics& e, const py::handle& class_means) {
            const at::Tensor means = tensor_argument(class_means, "EnergyMetrics.spectral_profile", "class_means");
            py::gil_scoped_release release;
            return e.spectral_profile(means);
          },
          py::arg("class_means"),
          R"doc(Where the variance of class means [..., nodes, d] lies on the graph's Laplacian spectrum.

The centred means X_c (each node's mean less the mean over nodes) are projected on the
eigenvectors u_k of the combinatorial Laplacian D - A (the one spectral_alignment uses):
the share of u_k is ||u_k^T X_c||^2 / ||X_c||^2. Low eigenvalues are smooth on the graph,
high ones rough. Returns SpectralProfile: eigenvalues [K] (distinct, ascending; values
within 1e-9 * max(1, the largest) count as one), multiplicities [K], shares [..., K] (per
distinct eigenvalue, summed over its eigenspace: independent of the solver's basis, the
number to report), eigenvectors [nodes, nodes] and eigenvector_shares [..., nodes]. NaN
where a node is absent (an all-NaN row) or all means coincide.

>>> grid = icgt.Graph.square_grid(4, 4)
>>> metrics = icgt.EnergyMetrics(grid)
>>> drawing = torch.tensor(grid.spectral_embedding(2).eigenvectors)  # z2, z3: both at eigenvalue 2 - sqrt(2)
>>> profile = metrics.spectral_profile(drawing)
>>> profile.eigenvalues[:3].round(decimals=4).tolist(), profile.multiplicities[:3].tolist()
([0.0, 0.5858, 1.1716], [1, 2, 1])
>>> profile.shares[:3].round(decimals=6).tolist()
[0.0, 1.0, 0.0]
)doc")
      .def(
          "graph_distance_correlation",
          [](const EnergyMetrics& e, const py::handle& representations) {
            const at::Tensor x =
                tensor_argument(representations, "EnergyMetrics.graph_distance_correlation", "representations");
            py::gil_scoped_release release;
            return e.graph_distance_correlation(x);
          },
          py::arg("representations"),
          R"doc(Pearson correlation of ||x_i - x_j|| with the shortest-path length, over node pairs i < j.

representations: [..., nodes, d] -> [...]; pairs without a path are left out.

>>> path = icgt.Graph.from_edges(4, [(0, 1), (1, 2), (2, 3)])
>>> line = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
>>> round(icgt.EnergyMetrics(path).graph_distance_correlation(line).item(), 6)
1.0
)doc")
      .def("__repr__", [](const EnergyMetrics& e) {
        return py::str("EnergyMetrics(graph={})").format(py::cast(e.graph()));
      });
}

}  // namespace icgt::python
