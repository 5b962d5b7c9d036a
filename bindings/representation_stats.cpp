#include "icgt/representation_stats.hpp"

#include "bindings.hpp"
#include "tensor_arguments.hpp"

namespace icgt::python {
namespace {

using Stats = RepresentationStats;

Stats::Alignment parse_alignment(const std::string& alignment) {
  if (alignment == "sign_flip") return Stats::Alignment::SignFlip;
  if (alignment == "procrustes") return Stats::Alignment::Procrustes;
  throw ValueError("RepresentationStats.align_snapshots: alignment must be 'sign_flip' or 'procrustes', got '" +
                   alignment + "'");
}

// The two class-mean sweeps share their argument handling.
template <Stats::ClassMeans (Stats::*sweep)(const torch::Tensor&, const torch::Tensor&, std::int64_t,
                                            const std::vector<std::int64_t>&) const>
Stats::ClassMeans run_sweep(const Stats& stats, const py::handle& residuals, const py::handle& nodes,
                            std::int64_t window, const py::handle& positions, const char* function) {
  const at::Tensor residual_tensor = tensor_argument(residuals, function, "residuals");
  const at::Tensor node_tensor = tensor_argument(nodes, function, "nodes");
  const std::vector<std::int64_t> position_list = integer_list_argument(positions, function, "positions");
  py::gil_scoped_release release;
  return (stats.*sweep)(residual_tensor, node_tensor, window, position_list);
}

}  // namespace

void register_representation_stats(py::module_& m) {
  py::class_<Stats> stats(m, "RepresentationStats", R"doc(Class means of a residual stream over trailing windows, and their PCA.

The mean of node k at snapshot position t averages the activations at every position of
[max(0, t - window), t] where node k stands, pooled over the batch. All snapshots come
from one pass over the activations (running sums), on the tensor's device; results stay
there as torch tensors. Activations are reduced in float32 (float64 stays float64). A node
absent from a window has count 0 and a NaN mean.

Example:
    >>> import torch, icgt
    >>> walks = icgt.WalkSampler(icgt.Graph.square_grid(4, 4), seed=0).random_walks(16, 200, start="per_node")
    >>> residuals = torch.randn(2, 16, 200, 8)  # [layers, batch, length, hidden]
    >>> stats = icgt.RepresentationStats(16)
    >>> curve = stats.class_means(residuals, walks, window=20, positions=stats.strided_positions(200, 10))
    >>> curve.means.shape, curve.counts.shape
    (torch.Size([2, 20, 16, 8]), torch.Size([20, 16]))
    >>> pcs = stats.principal_components(curve.means, 2)
    >>> pcs.projections.shape
    torch.Size([2, 20, 16, 2])
)doc");

  py::class_<Stats::ClassMeans>(stats, "ClassMeans", "Class means at a list of snapshot positions.")
      .def_readonly("means", &Stats::ClassMeans::means,
                    "[..., snapshots, nodes, hidden] (pooled) or [..., batch, snapshots, nodes, hidden] (per "
                    "sequence); NaN where the count is 0.")
      .def_readonly("counts", &Stats::ClassMeans::counts,
                    "int64 [snapshots, nodes] (pooled) or [batch, snapshots, nodes]: activations behind each mean.")
      .def_readonly("positions", &Stats::ClassMeans::positions, "int64 [snapshots]: the snapshot positions t.")
      .def("__repr__", [](const Stats::ClassMeans& c) {
        return py::str("RepresentationStats.ClassMeans(means={}, counts={}, positions={})")
            .format(py::tuple(py::cast(c.means.sizes().vec())), py::tuple(py::cast(c.counts.sizes().vec())),
                    py::tuple(py::cast(c.positions.sizes().vec())));
      });

  py::class_<Stats::PrincipalComponents>(stats, "PrincipalComponents",
                                         R"doc(Principal components of class means, per leading index.

May be built from tensors, e.g. to align one layer of a larger result:
``RepresentationStats.PrincipalComponents(pcs.components[0], pcs.explained_variance_ratio[0], pcs.projections[0], pcs.mean[0])``.
)doc")
      .def(py::init([](const py::handle& components, const py::handle& ratio, const py::handle& projections,
                       const py::handle& mean) {
             const char* function = "RepresentationStats.PrincipalComponents";
             return Stats::PrincipalComponents{tensor_argument(components, function, "components"),
                                               tensor_argument(ratio, function, "explained_variance_ratio"),
                                               tensor_argument(projections, function, "projections"),
                                               tensor_argument(mean, function, "mean")};
           }),
           py::arg("components"), py::arg("explained_variance_ratio"), py::arg("projections"), py::arg("mean"))
      .def_readonly("components", &Stats::PrincipalComponents::components,
                    "[..., k, hidden]: orthonormal rows, largest variance first; each row's largest-magnitude "
                    "entry positive.")
      .def_readonly("explained_variance_ratio", &Stats::PrincipalComponents::explained_variance_ratio,
                    "[..., k]: fraction of the present nodes' total variance along each row of components.")
      .def_readonly("projections", &Stats::PrincipalComponents::projections,
                    "[..., nodes, k]: centred means in component coordinates; NaN rows for absent nodes.")
      .def_readonly("mean", &Stats::PrincipalComponents::mean, "[..., hidden]: the mean of the present nodes' means.")
      .def("__repr__", [](const Stats::PrincipalComponents& p) {
        return py::str("RepresentationStats.PrincipalComponents(components={}, projections={})")
            .format(py::tuple(py::cast(p.components.sizes().vec())),
                    py::tuple(py::cast(p.projections.sizes().vec())));
      });

  stats.def(py::init<std::int64_t>(), py::arg("num_nodes"),
            "num_nodes: node ids run over 0..num_nodes-1.\n\n>>> icgt.RepresentationStats(16).num_nodes\n16")
      .def_property_readonly("num_nodes", &Stats::num_nodes, "The number of nodes: one class mean per node id.")
      .def_static("strided_positions", &Stats::strided_positions, py::arg("length"), py::arg("stride"),
                  py::arg("first") = 0,
                  R"doc(Snapshot positions first, first + stride, ... up to length - 1.

>>> icgt.RepresentationStats.strided_positions(50, 10, first=9)
[9, 19, 29, 39, 49]
)doc")
      .def(
          "class_means",
          [](const Stats& s, const py::handle& residuals, const py::handle& nodes, std::int64_t window,
             const py::handle& positions) {
            return run_sweep<&Stats::class_means>(s, residuals, nodes, window, positions,
                                                  "RepresentationStats.class_means");
          },
          py::arg("residuals"), py::arg("nodes"), py::arg("window"), py::arg("positions"),
          R"doc(Class means pooled over the batch, at every snapshot position, from one pass.

residuals: floating [..., batch, length, hidden] tensor ("..." e.g. layers).
nodes: integer [batch, length], node ids or icgt.NOT_A_NODE (BOS, separators); a numpy
array (WalkSampler output) is fine. window: Nw in 0..length-1, the window being
[max(0, t - Nw), t]. positions: strictly increasing snapshot positions in 0..length-1.
Returns ClassMeans: means [..., snapshots, nodes, hidden] (NaN where a node is absent),
counts [snapshots, nodes], positions [snapshots]. Cost O(batch * length * hidden) per
leading index, whatever the window. Raises ValueError for shapes that disagree, labels
outside the graph, windows or positions outside the sequence, and NaN or infinite
activations that enter a mean; TypeError for wrong dtypes or ranks.

>>> stats = icgt.RepresentationStats(3)
>>> x = torch.arange(8.0).reshape(1, 4, 2)  # batch 1, length 4, hidden 2
>>> nodes = torch.tensor([[icgt.NOT_A_NODE, 0, 1, 0]])
>>> c = stats.class_means(x, nodes, window=2, positions=[3])
>>> c.means[0, 0].tolist(), c.counts.tolist()
([4.0, 5.0], [[2, 1, 0]])
>>> bool(c.means[0, 2].isnan().all())  # node 2 never occurs
True
)doc")
      .def(
          "class_means_per_sequence",
          [](const Stats& s, const py::handle& residuals, const py::handle& nodes, std::int64_t window,
             const py::handle& positions) {
            return run_sweep<&Stats::class_means_per_sequence>(s, residuals, nodes, window, positions,
                                                               "RepresentationStats.class_means_per_sequence");
          },
          py::arg("residuals"), py::arg("nodes"), py::arg("window"), py::arg("positions"),
          R"doc(As class_means, without pooling over the batch.

Returns means [..., batch, snapshots, nodes, hidden] and counts [batch, snapshots, nodes].

>>> stats = icgt.RepresentationStats(2)
>>> x = torch.tensor([[[1.0], [3.0]], [[5.0], [7.0]]])  # batch 2, length 2, hidden 1
>>> c = stats.class_means_per_sequence(x, torch.tensor([[0, 0], [0, 1]]), window=1, positions=[1])
>>> c.means[:, 0, :, 0].tolist()
[[2.0, nan], [5.0, 7.0]]
)doc")
      .def(
          "principal_components",
          [](const Stats& s, const py::handle& class_means, std::int64_t num_components) {
            const at::Tensor means = tensor_argument(class_means, "RepresentationStats.principal_components",
                                                     "class_means");
            py::gil_scoped_release release;
            return s.principal_components(means, num_components);
          },
          py::arg("class_means"), py::arg("num_components") = 2,
          R"doc(PCA of class means [..., nodes, hidden], each leading index on its own.

Centred on the mean of the present nodes (all-NaN rows are absent nodes). Components
match scikit-learn's PCA up to sign. num_components: 1..min(nodes - 1, hidden). A
snapshot with fewer than num_components + 1 present nodes gives NaN (no exception).

>>> stats = icgt.RepresentationStats(4)
>>> rectangle = torch.tensor([[2.0, 1, 0], [2, -1, 0], [-2, -1, 0], [-2, 1, 0]])
>>> pcs = stats.principal_components(rectangle, 2)
>>> [round(r, 3) for r in pcs.explained_variance_ratio.tolist()], pcs.components.abs().round(decimals=6).tolist()
([0.8, 0.2], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
)doc")
      .def_static(
          "align_snapshots",
          [](const Stats::PrincipalComponents& components, const std::string& alignment) {
            const auto method = parse_alignment(alignment);
            py::gil_scoped_release release;
            return Stats::align_snapshots(components, method);
          },
          py::arg("components"), py::arg("alignment") = "procrustes",
          R"doc(Turns each snapshot's components to match the previous one, so animations do not flip.

The snapshot dimension is the one before nodes in projections [..., snapshots, nodes, k].
Each snapshot is mapped by an orthogonal k x k matrix R to best match the last aligned
snapshot that had results, over the nodes present in both; the first stays.
alignment="sign_flip" only flips components; "procrustes" allows any rotation or
reflection. Projections become P R, components R^T C, and explained_variance_ratio the
variance along the new axes.

>>> stats = icgt.RepresentationStats(4)
>>> rectangle = torch.tensor([[2.0, 1, 0], [2, -1, 0], [-2, -1, 0], [-2, 1, 0]])
>>> pcs = stats.principal_components(torch.stack([rectangle, -rectangle]), 2)
>>> steady = icgt.RepresentationStats.align_snapshots(pcs, "sign_flip")
>>> torch.allclose(steady.projections[1], steady.projections[0])
True
)doc")
      .def("__repr__", [](const Stats& s) { return py::str("RepresentationStats(num_nodes={})").format(s.num_nodes()); });
}

}  // namespace icgt::python
