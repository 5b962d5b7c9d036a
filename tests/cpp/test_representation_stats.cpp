#include "catch_torch.hpp"
#include "icgt/errors.hpp"
#include "icgt/graph.hpp"
#include "icgt/representation_stats.hpp"
#include "centred_svd.hpp"
#include "window_sweep.hpp"

#include <cmath>
#include <limits>
#include <vector>

using icgt::RepresentationStats;
using Catch::Matchers::Contains;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Node ids in -1..num_nodes-1 (-1 = kNotANode), a fixed pseudo-random pattern.
torch::Tensor random_nodes(std::int64_t batch, std::int64_t length, std::int64_t num_nodes, std::uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(-1, num_nodes, {batch, length}, torch::kInt64);
}

// The definition, one window at a time: means [leading, snapshots, nodes, hidden] (pooled) or
// [leading, batch, snapshots, nodes, hidden] (per sequence), in float64.
torch::Tensor brute_force_means(const torch::Tensor& residuals, const torch::Tensor& nodes, std::int64_t num_nodes,
                                std::int64_t window, const std::vector<std::int64_t>& positions, bool per_sequence) {
  const torch::Tensor x = residuals.to(torch::kFloat64);
  const std::int64_t leading = x.size(0), batch = x.size(1), hidden = x.size(3);
  const auto snapshots = static_cast<std::int64_t>(positions.size());
  const std::int64_t groups = per_sequence ? batch : 1;
  torch::Tensor sums = torch::zeros({leading, groups, snapshots, num_nodes, hidden}, torch::kFloat64);
  torch::Tensor counts = torch::zeros({groups, snapshots, num_nodes}, torch::kFloat64);
  const auto node = nodes.accessor<std::int64_t, 2>();
  for (std::int64_t s = 0; s < snapshots; ++s) {
    for (std::int64_t p = std::max<std::int64_t>(0, positions[s] - window); p <= positions[s]; ++p) {
      for (std::int64_t b = 0; b < batch; ++b) {
        const std::int64_t k = node[b][p];
        if (k < 0) continue;
        const std::int64_t g = per_sequence ? b : 0;
        sums.select(1, g).select(1, s).select(1, k) += x.select(1, b).select(1, p);
        counts[g][s][k] += 1;
      }
    }
  }
  torch::Tensor means = sums / counts.unsqueeze(-1);
  return per_sequence ? means : means.squeeze(1);
}

bool all_nan(const torch::Tensor& t) { return torch::isnan(t).all().item<bool>(); }

double max_difference(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor difference = (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs();
  // NaN only where both are NaN.
  REQUIRE(torch::equal(torch::isnan(a), torch::isnan(b)));
  return torch::nan_to_num(difference, 0.0).max().item<double>();
}

}  // namespace

TEST_CASE("class means over a window equal a loop over the window, pooled and per sequence") {
  const std::int64_t num_nodes = 5, batch = 3, length = 40, hidden = 4;
  const RepresentationStats stats(num_nodes);
  torch::manual_seed(1);
  const torch::Tensor residuals = torch::randn({2, batch, length, hidden}, torch::kFloat64) + 3.0;
  const torch::Tensor nodes = random_nodes(batch, length, num_nodes, 2);
  const std::vector<std::int64_t> positions{0, 1, 7, 8, 20, 33, 39};
  for (std::int64_t window : {0, 1, 3, 10, 39}) {
    INFO("window " << window);
    const auto pooled = stats.class_means(residuals, nodes, window, positions);
    REQUIRE(pooled.means.sizes() == torch::IntArrayRef{2, 7, num_nodes, hidden});
    CHECK(max_difference(pooled.means, brute_force_means(residuals, nodes, num_nodes, window, positions, false)) <
          1e-12);
    const auto per_sequence = stats.class_means_per_sequence(residuals, nodes, window, positions);
    REQUIRE(per_sequence.means.sizes() == torch::IntArrayRef{2, batch, 7, num_nodes, hidden});
    CHECK(max_difference(per_sequence.means, brute_force_means(residuals, nodes, num_nodes, window, positions, true)) <
          1e-12);
    CHECK(torch::equal(per_sequence.counts.sum(0), pooled.counts));
    CHECK(torch::equal(pooled.positions, torch::tensor(positions, torch::kInt64)));
  }
}

TEST_CASE("class means: counts are the occurrences in the window and absent nodes are NaN") {
  const RepresentationStats stats(3);
  const torch::Tensor residuals = torch::arange(8.0, torch::kFloat32).reshape({1, 4, 2});
  const torch::Tensor nodes = torch::tensor({-1, 0, 1, 0}, torch::kInt64).reshape({1, 4});
  const auto result = stats.class_means(residuals, nodes, 2, {3});
  CHECK(torch::equal(result.counts, torch::tensor({2, 1, 0}, torch::kInt64).reshape({1, 3})));
  CHECK(torch::allclose(result.means[0][0], torch::tensor({4.0f, 5.0f})));
  CHECK(torch::allclose(result.means[0][1], torch::tensor({4.0f, 5.0f})));
  CHECK(all_nan(result.means[0][2]));
  CHECK(result.means.scalar_type() == torch::kFloat32);
}

TEST_CASE("class means stay accurate late in a long sweep of float32 activations") {
  // A large common offset and small node-dependent parts: float32 running sums over the whole
  // sequence, differenced per window, would cancel the small parts away.
  const std::int64_t length = 4000, num_nodes = 4;
  const RepresentationStats stats(num_nodes);
  const torch::Tensor nodes = torch::arange(length).remainder(num_nodes).reshape({1, length});
  const torch::Tensor residuals = (1000.0 + 0.001 * nodes.to(torch::kFloat32)).reshape({1, length, 1});
  const auto result = stats.class_means(residuals, nodes, 20, RepresentationStats::strided_positions(length, 10, 30));
  const torch::Tensor expected = (1000.0 + 0.001 * torch::arange(num_nodes, torch::kFloat32)).reshape({1, num_nodes, 1});
  CHECK(max_difference(result.means, expected.expand_as(result.means)) < 1e-4);
}

TEST_CASE("the fused CPU sweep and the tensor-operation sweep agree") {
  const std::int64_t num_nodes = 6, batch = 4, length = 300, hidden = 70;
  torch::manual_seed(3);
  const torch::Tensor source = torch::randn({3, batch, length, hidden});
  const torch::Tensor nodes = random_nodes(batch, length, num_nodes, 4);
  // Two sets of windows in one pass: a wide one at every 7th position, a narrow one at scattered
  // positions whose boundaries fall between the first set's.
  icgt::detail::TrailingWindows wide, narrow;
  for (std::int64_t t = 0; t < length; t += 7) {
    wide.starts.push_back(std::max<std::int64_t>(0, t - 150));
    wide.ends.push_back(t + 1);
  }
  for (std::int64_t t : {40, 41, 95, 230, 299}) {
    narrow.starts.push_back(t - 12);
    narrow.ends.push_back(t + 1);
  }
  const std::vector<std::pair<int, int>> edges{{0, 1}, {1, 2}, {2, 3}, {3, 4}, {4, 5}, {5, 0}, {0, 3}};
  for (bool per_sequence : {false, true}) {
    using Output = icgt::detail::WindowSweep::Output;
    std::vector<icgt::detail::WindowSweep> sweeps{
        {wide, {}, Output::ClassMeans, {}}, {narrow, {}, Output::ClassMeans, {}}, {wide, {}, Output::EnergySums, edges}};
    for (auto& sweep : sweeps) sweep.counts = icgt::detail::window_counts(nodes, num_nodes, per_sequence, sweep.windows);
    const auto fused_sweep = icgt::detail::sweep_windows_on_cpu(source, nodes, num_nodes, per_sequence, sweeps);
    CHECK(fused_sweep.finite);
    const auto ops_sweep = icgt::detail::sweep_windows_by_tensor_ops(source, nodes, num_nodes, per_sequence, sweeps);
    CHECK(ops_sweep.finite);
    const std::vector<torch::Tensor>&fused = fused_sweep.outputs, &by_ops = ops_sweep.outputs;
    for (int r = 0; r < 3; ++r) {
      const double scale = std::max(1.0, by_ops[r].nan_to_num(0).abs().max().item<double>());
      CHECK(max_difference(fused[r], by_ops[r]) < 1e-5 * scale);
    }
    // Energy sums are NaN exactly where a window lacks a node, and the test has both kinds.
    const torch::Tensor all_present = (sweeps[2].counts > 0).all(-1).unsqueeze(0).expand({3, -1, -1});
    CHECK(all_present.any().item<bool>());
    CHECK((~all_present).any().item<bool>());  // early windows miss nodes: NaN there
    CHECK(torch::isnan(fused[2].select(-1, 0)).equal(~all_present));
  }
}

TEST_CASE("class means accept half, bfloat16 and integer node ids of any width") {
  const RepresentationStats stats(4);
  torch::manual_seed(5);
  const torch::Tensor residuals = torch::randn({2, 50, 8});
  const torch::Tensor nodes = random_nodes(2, 50, 4, 6);
  const auto reference = stats.class_means(residuals, nodes, 10, {49});
  for (auto dtype : {torch::kHalf, torch::kBFloat16}) {
    const auto result = stats.class_means(residuals.to(dtype), nodes.to(torch::kInt32), 10, {49});
    CHECK(result.means.scalar_type() == torch::kFloat32);
    CHECK(max_difference(result.means, reference.means) < 2e-2);
  }
}

TEST_CASE("strided positions") {
  CHECK(RepresentationStats::strided_positions(5, 1) == std::vector<std::int64_t>{0, 1, 2, 3, 4});
  CHECK(RepresentationStats::strided_positions(50, 10, 9) == std::vector<std::int64_t>{9, 19, 29, 39, 49});
  CHECK_THROWS_WITH(RepresentationStats::strided_positions(0, 1), Contains("length must be positive, got 0"));
  CHECK_THROWS_WITH(RepresentationStats::strided_positions(5, 0), Contains("stride must be positive, got 0"));
  CHECK_THROWS_WITH(RepresentationStats::strided_positions(5, 1, 5), Contains("first is 5, outside the sequence"));
}

TEST_CASE("class means: bad input is an error that names the argument") {
  const RepresentationStats stats(3);
  const torch::Tensor residuals = torch::zeros({2, 10, 4});
  const torch::Tensor nodes = torch::zeros({2, 10}, torch::kInt64);
  CHECK_THROWS_WITH(RepresentationStats(0), Contains("num_nodes must be positive, got 0"));
  CHECK_THROWS_AS(stats.class_means(torch::Tensor(), nodes, 1, {5}), icgt::TypeError);
  CHECK_THROWS_WITH(stats.class_means(residuals.to(torch::kInt64), nodes, 1, {5}),
                    Contains("residuals has dtype Long; expected a floating-point tensor"));
  CHECK_THROWS_WITH(stats.class_means(torch::zeros({10, 4}), nodes, 1, {5}),
                    Contains("residuals has 2 dimension(s)"));
  CHECK_THROWS_WITH(stats.class_means(residuals, nodes.to(torch::kFloat32), 1, {5}),
                    Contains("nodes has dtype Float; expected an integer tensor"));
  CHECK_THROWS_AS(stats.class_means(residuals, nodes.to(torch::kBool), 1, {5}), icgt::TypeError);
  CHECK_THROWS_WITH(stats.class_means(residuals, torch::Tensor(), 1, {5}),
                    Contains("nodes is an undefined tensor; expected an integer tensor [batch, length]"));
  CHECK_THROWS_WITH(stats.class_means(residuals, nodes.flatten(), 1, {5}), Contains("nodes has 1 dimension(s)"));
  CHECK_THROWS_WITH(stats.class_means(residuals, torch::zeros({2, 9}, torch::kInt64), 1, {5}),
                    Contains("nodes has shape [2, 9] but residuals [2, 10, 4] needs nodes [batch, length] = [2, 10]"));
  CHECK_THROWS_WITH(stats.class_means(residuals, nodes, -1, {5}),
                    Contains("window is -1, outside the sequence of 10 positions; expected 0..9"));
  CHECK_THROWS_WITH(stats.class_means(residuals, nodes, 10, {5}), Contains("window is 10"));
  CHECK_THROWS_WITH(stats.class_means(residuals, nodes, 1, {}), Contains("positions is empty"));
  CHECK_THROWS_WITH(stats.class_means(residuals, nodes, 1, {3, 10}),
                    Contains("positions[1] is 10, outside the sequence; expected 0..9"));
  CHECK_THROWS_WITH(stats.class_means(residuals, nodes, 1, {-1}), Contains("positions[0] is -1"));
  CHECK_THROWS_WITH(stats.class_means(residuals, nodes, 1, {4, 4}),
                    Contains("positions must be strictly increasing, but positions[1] = 4 follows 4"));
  torch::Tensor bad_nodes = nodes.clone();
  bad_nodes[1][3] = 3;
  CHECK_THROWS_WITH(stats.class_means(residuals, bad_nodes, 1, {5}),
                    Contains("nodes holds 3 at index (1, 3); expected node ids 0..2 or -1 (not a node)"));
  bad_nodes[1][3] = -2;
  CHECK_THROWS_WITH(stats.class_means_per_sequence(residuals, bad_nodes, 1, {5}),
                    Contains("RepresentationStats.class_means_per_sequence: nodes holds -2"));
}

TEST_CASE("class means: a NaN or infinity that enters a mean is an error, elsewhere it is ignored") {
  const RepresentationStats stats(2);
  torch::Tensor residuals = torch::zeros({2, 3, 10, 4});
  torch::Tensor nodes = torch::zeros({3, 10}, torch::kInt64);
  nodes[1][0] = icgt::kNotANode;
  residuals[1][1][0][2] = kNaN;  // at a BOS-like position: never read
  residuals[0][2][9][0] = std::numeric_limits<float>::infinity();  // after the last window
  CHECK_NOTHROW(stats.class_means(residuals, nodes, 2, {4, 8}));
  residuals[1][2][6][1] = kNaN;
  residuals[1][2][7][3] = kNaN;  // the message names the first
  CHECK_THROWS_WITH(stats.class_means(residuals, nodes, 2, {4, 8}),
                    Contains("residuals holds a NaN or infinite value at index (1, 2, 6)"));
  CHECK_THROWS_AS(stats.class_means_per_sequence(residuals, nodes, 2, {4, 8}), icgt::ValueError);
  // Finite activations whose sum does not fit in float32.
  CHECK_THROWS_WITH(stats.class_means(torch::full({3, 10, 4}, 3e38f), nodes, 2, {4}),
                    Contains("the sums of residuals overflow float32"));
}

TEST_CASE("principal components of a rectangle: axes, variance ratios, projections") {
  const RepresentationStats stats(4);
  const torch::Tensor rectangle =
      torch::tensor({2.0, 1.0, 0.0, 2.0, -1.0, 0.0, -2.0, -1.0, 0.0, -2.0, 1.0, 0.0}, torch::kFloat64).reshape({4, 3}) +
      5.0;
  const auto pcs = stats.principal_components(rectangle, 2);
  const torch::Tensor axes = torch::tensor({1.0, 0.0, 0.0, 0.0, 1.0, 0.0}, torch::kFloat64).reshape({2, 3});
  CHECK(torch::allclose(pcs.components.abs(), axes, 0, 1e-12));
  CHECK(torch::allclose(pcs.explained_variance_ratio, torch::tensor({0.8, 0.2}, torch::kFloat64)));
  CHECK(torch::allclose(pcs.mean, torch::full({3}, 5.0, torch::kFloat64)));
  const torch::Tensor expected = torch::matmul(rectangle - pcs.mean, pcs.components.t());
  CHECK(torch::allclose(pcs.projections, expected, 1e-12, 1e-12));
  // The sign convention: the largest entry of each component is positive.
  CHECK((pcs.components.gather(1, pcs.components.abs().argmax(1, true)) > 0).all().item<bool>());
}

TEST_CASE("principal components: batched equals one at a time, absent nodes are left out") {
  const RepresentationStats stats(6);
  torch::manual_seed(7);
  torch::Tensor means = torch::randn({3, 2, 6, 10}, torch::kFloat64);
  means[1][0][4].fill_(kNaN);
  const auto batched = stats.principal_components(means, 3);
  REQUIRE(batched.projections.sizes() == torch::IntArrayRef{3, 2, 6, 3});
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 2; ++j) {
      const torch::Tensor present = torch::isfinite(means[i][j]).all(-1);
      const torch::Tensor rows = means[i][j].index({present});
      const auto single = RepresentationStats(rows.size(0)).principal_components(rows, 3);
      CHECK(torch::allclose(batched.components[i][j], single.components, 1e-9, 1e-9));
      CHECK(torch::allclose(batched.projections[i][j].index({present}), single.projections, 1e-9, 1e-9));
    }
  }
  CHECK(all_nan(batched.projections[1][0][4]));
  CHECK_FALSE(torch::isnan(batched.projections[1][0][3]).any().item<bool>());
  // Components are orthonormal.
  const torch::Tensor gram = torch::matmul(batched.components, batched.components.transpose(-1, -2));
  CHECK(torch::allclose(gram, torch::eye(3, torch::kFloat64).expand_as(gram), 1e-9, 1e-9));
}

TEST_CASE("principal components of a snapshot with too few nodes are NaN, not an error") {
  const RepresentationStats stats(4);
  torch::Tensor means = torch::randn({2, 4, 5});
  means[1].slice(0, 0, 2).fill_(kNaN);  // two nodes left: they span one direction, not two
  const auto pcs = stats.principal_components(means, 2);
  CHECK(all_nan(pcs.components[1]));
  CHECK(all_nan(pcs.projections[1]));
  CHECK_FALSE(torch::isnan(pcs.components[0]).any().item<bool>());
}

TEST_CASE("principal components: bad input is an error that names the argument") {
  const RepresentationStats stats(4);
  const torch::Tensor means = torch::randn({4, 5});
  CHECK_THROWS_WITH(stats.principal_components(means.to(torch::kInt32), 2),
                    Contains("class_means has dtype Int; expected a floating-point tensor [..., nodes, hidden]"));
  CHECK_THROWS_WITH(stats.principal_components(torch::randn({4}), 2), Contains("class_means has 1 dimension(s)"));
  CHECK_THROWS_WITH(stats.principal_components(torch::randn({3, 5}), 2),
                    Contains("class_means has shape [3, 5], whose dimension -2 (nodes) should be 4"));
  CHECK_THROWS_WITH(stats.principal_components(means, 0), Contains("num_components is 0; expected 1..3"));
  CHECK_THROWS_WITH(stats.principal_components(torch::randn({4, 2}), 3), Contains("expected 1..2"));
  torch::Tensor partly_nan = means.clone();
  partly_nan[2][1] = kNaN;
  CHECK_THROWS_WITH(stats.principal_components(partly_nan, 2),
                    Contains("class_means row (2) holds a NaN or infinite value among finite ones"));
  torch::Tensor infinite = means.clone();
  infinite[1].fill_(std::numeric_limits<float>::infinity());
  CHECK_THROWS_AS(stats.principal_components(infinite, 2), icgt::ValueError);
}

TEST_CASE("aligning snapshots undoes sign flips and rotations") {
  const RepresentationStats stats(5);
  torch::manual_seed(8);
  const torch::Tensor base = torch::randn({5, 7}, torch::kFloat64);
  const double angle = 0.7;
  torch::Tensor turn = torch::eye(7, torch::kFloat64);
  turn[0][0] = std::cos(angle);
  turn[0][1] = -std::sin(angle);
  turn[1][0] = std::sin(angle);
  turn[1][1] = std::cos(angle);
  // Snapshot 1 mirrors snapshot 0; snapshot 2 has no results; snapshot 3 is a rotated copy.
  const torch::Tensor means =
      torch::stack({base, -base, torch::full({5, 7}, kNaN, torch::kFloat64), base.matmul(turn)});
  const auto pcs = stats.principal_components(means, 2);
  CHECK(torch::allclose(pcs.projections[1], -pcs.projections[0], 1e-9, 1e-9));
  const auto flipped = RepresentationStats::align_snapshots(pcs, RepresentationStats::Alignment::SignFlip);
  CHECK(torch::allclose(flipped.projections[1], pcs.projections[0], 1e-9, 1e-9));
  CHECK(torch::allclose(flipped.components[1], -pcs.components[1], 1e-9, 1e-9));
  const auto turned = RepresentationStats::align_snapshots(pcs, RepresentationStats::Alignment::Procrustes);
  CHECK(torch::allclose(turned.projections[0], pcs.projections[0]));
  CHECK(all_nan(turned.projections[2]));
  // Snapshot 3 holds the same points as snapshot 0, so it maps back onto it exactly.
  CHECK(torch::allclose(turned.projections[3], pcs.projections[0], 1e-9, 1e-9));
  const torch::Tensor centred = means[3] - turned.mean[3];
  CHECK(torch::allclose(torch::matmul(centred, turned.components[3].t()), turned.projections[3], 1e-9, 1e-9));
  CHECK(torch::allclose(turned.explained_variance_ratio[3].sum(), pcs.explained_variance_ratio[3].sum()));
  CHECK(torch::allclose(flipped.explained_variance_ratio, pcs.explained_variance_ratio, 1e-12, 1e-12, true));
}

TEST_CASE("align_snapshots: bad input is an error") {
  const RepresentationStats stats(4);
  const auto single = stats.principal_components(torch::randn({4, 6}), 2);
  CHECK_THROWS_WITH(RepresentationStats::align_snapshots(single, RepresentationStats::Alignment::SignFlip),
                    Contains("projections has 2 dimension(s)"));
  auto batched = stats.principal_components(torch::randn({3, 4, 6}), 2);
  batched.explained_variance_ratio = batched.explained_variance_ratio.narrow(0, 0, 2);
  CHECK_THROWS_WITH(RepresentationStats::align_snapshots(batched, RepresentationStats::Alignment::Procrustes),
                    Contains("do not match projections [3, 4, 2]"));
  const auto three = stats.principal_components(torch::randn({3, 4, 6}), 2);
  const RepresentationStats::PrincipalComponents none{three.components.narrow(0, 0, 0),
                                                     three.explained_variance_ratio.narrow(0, 0, 0),
                                                     three.projections.narrow(0, 0, 0), three.mean.narrow(0, 0, 0)};
  CHECK_THROWS_WITH(RepresentationStats::align_snapshots(none, RepresentationStats::Alignment::Procrustes),
                    Contains("align_snapshots: projections [0, 4, 2] holds no snapshot; expected at least one"));
}

TEST_CASE("the fused CPU centred Gram matrix and the tensor-operation one agree, absent rows included") {
  torch::manual_seed(8);
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    const torch::Tensor means = (torch::randn({3, 4, 7, 50}) + 40.0).to(dtype);
    torch::Tensor present = torch::rand({3, 4, 7}) > 0.2;
    present[1][2].fill_(false);  // no row present: a NaN centre, a zero Gram matrix
    const auto fused = icgt::detail::centred_gram(means, present);
    const auto by_ops = icgt::detail::centred_gram_by_tensor_ops(means, present);
    CHECK(fused.gram.scalar_type() == torch::kFloat64);
    CHECK(max_difference(fused.gram, by_ops.gram) < 1e-9 * by_ops.gram.abs().max().item<double>());
    CHECK(max_difference(fused.mean, by_ops.mean) < 1e-12);
    CHECK(all_nan(fused.mean[1][2]));
    // The centred rows of the present nodes sum to zero, so do the rows of their Gram matrix.
    CHECK(fused.gram.sum(-1).abs().max().item<double>() < 1e-8);

    const auto svd = icgt::detail::centred_svd(means, present, 3);
    const auto svd_by_ops = icgt::detail::centred_svd_by_tensor_ops(means, present, 3);
    const double tolerance = dtype == torch::kFloat32 ? 1e-4 : 1e-9;
    CHECK(svd.vh.scalar_type() == dtype);
    // Compared where 3 components are defined (4 nodes or more): elsewhere U spans an arbitrary
    // part of a null space.
    const torch::Tensor defined = present.sum(-1) >= 4;
    REQUIRE(defined.sum().item<std::int64_t>() >= 6);
    for (const auto& [fused_all, ops_all] : {std::pair{svd.u, svd_by_ops.u}, std::pair{svd.vh, svd_by_ops.vh},
                                             // squared: zero singular values come out as the
                                             // square roots of rounding errors
                                             std::pair{svd.singular.square(), svd_by_ops.singular.square()},
                                             std::pair{svd.mean, svd_by_ops.mean}}) {
      const torch::Tensor fused_part = fused_all.index({defined}), ops_part = ops_all.index({defined});
      CHECK(max_difference(fused_part, ops_part) < tolerance * std::max(1.0, ops_part.nan_to_num(0).abs().max().item<double>()));
    }
  }
}

TEST_CASE("the fused sweep re-sums segments that have left its cache, and still agrees") {
  // Per-sequence sums of 16 sequences x 32 nodes x 256 dims fill the sweep's 4 MiB segment cache
  // with 8 segments, far fewer than a 100-position window slides over.
  const std::int64_t num_nodes = 32, batch = 16, length = 200, hidden = 256;
  torch::manual_seed(9);
  const torch::Tensor source = torch::randn({8, batch, length, hidden});
  const torch::Tensor nodes = random_nodes(batch, length, num_nodes, 10);
  icgt::detail::TrailingWindows windows;
  for (std::int64_t t = 0; t < length; t += 3) {
    windows.starts.push_back(std::max<std::int64_t>(0, t - 100));
    windows.ends.push_back(t + 1);
  }
  std::vector<icgt::detail::WindowSweep> sweeps{{windows, icgt::detail::window_counts(nodes, num_nodes, true, windows),
                                                 icgt::detail::WindowSweep::Output::ClassMeans, {}}};
  const auto fused = icgt::detail::sweep_windows_on_cpu(source, nodes, num_nodes, true, sweeps);
  const auto by_ops = icgt::detail::sweep_windows_by_tensor_ops(source, nodes, num_nodes, true, sweeps);
  CHECK(fused.finite);
  CHECK(max_difference(fused.outputs.front(), by_ops.outputs.front()) < 1e-5);
}
