#include "catch_torch.hpp"
#include "edge_sums.hpp"
#include "icgt/energy_metrics.hpp"
#include "icgt/errors.hpp"
#include "icgt/representation_stats.hpp"
#include "icgt/walk_sampler.hpp"

#include <cmath>
#include <limits>

using icgt::EnergyMetrics;
using icgt::Graph;
using Catch::Matchers::Contains;
using Energy = EnergyMetrics::Energy;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The ring of 4 drawn as a unit square, each node at distance 1 from the centre.
torch::Tensor square() { return torch::tensor({1.0, 0.0, 0.0, 1.0, -1.0, 0.0, 0.0, -1.0}, torch::kFloat64).reshape({4, 2}); }

torch::Tensor to_tensor(const Eigen::MatrixXd& matrix) {
  torch::Tensor tensor = torch::empty({matrix.rows(), matrix.cols()}, torch::kFloat64);
  for (Eigen::Index i = 0; i < matrix.rows(); ++i) {
    for (Eigen::Index j = 0; j < matrix.cols(); ++j) tensor[i][j] = matrix(i, j);
  }
  return tensor;
}

// n x k with orthonormal columns orthogonal to the constant vector.
torch::Tensor random_centred_orthonormal(std::int64_t n, std::int64_t k) {
  torch::Tensor x = torch::randn({n, k}, torch::kFloat64);
  x = x - x.mean(0, true);
  return std::get<0>(torch::linalg_qr(x));
}

double item(const torch::Tensor& t) { return t.item<double>(); }

}  // namespace

TEST_CASE("Dirichlet energy of a square drawn on the ring: known values for every kind") {
  const EnergyMetrics metrics(Graph::ring(4));
  CHECK(item(metrics.dirichlet_energy(square(), Energy::Raw)) == Approx(16.0));
  CHECK(item(metrics.dirichlet_energy(square(), Energy::Normalized)) == Approx(1.0));
  // Mean squared edge length 2 over mean squared pair distance 16 / 6.
  CHECK(item(metrics.dirichlet_energy(square(), Energy::ScaleInvariant)) == Approx(0.75));
  CHECK(metrics.dirichlet_energy(square().to(torch::kFloat32)).scalar_type() == torch::kFloat32);
}

TEST_CASE("Dirichlet energy: batched leading dimensions, NaN for an absent node, invariances") {
  const EnergyMetrics metrics(Graph::square_grid(3, 3));
  torch::manual_seed(11);
  torch::Tensor x = torch::randn({2, 3, 9, 5}, torch::kFloat64);
  x[1][2][4].fill_(kNaN);
  for (Energy energy : {Energy::Raw, Energy::Normalized, Energy::ScaleInvariant}) {
    const torch::Tensor batched = metrics.dirichlet_energy(x, energy);
    REQUIRE(batched.sizes() == torch::IntArrayRef{2, 3});
    CHECK(std::isnan(item(batched[1][2])));
    CHECK(item(batched[0][1]) == Approx(item(metrics.dirichlet_energy(x[0][1], energy))));
  }
  const torch::Tensor y = x[0][0];
  const double scale_invariant = item(metrics.dirichlet_energy(y, Energy::ScaleInvariant));
  CHECK(item(metrics.dirichlet_energy(0.01 * y + 3.0, Energy::ScaleInvariant)) == Approx(scale_invariant));
  CHECK(item(metrics.dirichlet_energy(0.01 * y, Energy::Normalized)) ==
        Approx(item(metrics.dirichlet_energy(y, Energy::Normalized))));
  CHECK(item(metrics.dirichlet_energy(0.01 * y, Energy::Raw)) ==
        Approx(1e-4 * item(metrics.dirichlet_energy(y, Energy::Raw))));
  // All nodes at one point: the normalised energy is 0, the scale-invariant one undefined.
  CHECK(item(metrics.dirichlet_energy(torch::ones({9, 5}), Energy::Normalized)) == Approx(0.0));
  CHECK(std::isnan(item(metrics.dirichlet_energy(torch::ones({9, 5}), Energy::ScaleInvariant))));
}

TEST_CASE("the fused CPU edge sums and the tensor-operation edge sums agree") {
  const Graph hex = Graph::hexagonal_lattice(3, 3);
  torch::manual_seed(16);
  for (auto dtype : {torch::kFloat32, torch::kFloat64}) {
    const torch::Tensor x = torch::randn({5, 7, 30, 100}, dtype) + 10.0;
    const torch::Tensor fused = icgt::detail::edge_square_sums(x, hex.edges());
    const torch::Tensor by_ops = icgt::detail::edge_square_sums_by_tensor_ops(x, hex.edges());
    REQUIRE(fused.sizes() == torch::IntArrayRef{5, 7});
    CHECK(fused.scalar_type() == dtype);
    CHECK(torch::allclose(fused, by_ops, dtype == torch::kFloat32 ? 1e-5 : 1e-12));
  }
}

TEST_CASE("the spectral embedding minimises the scale-invariant energy, at its lower bound") {
  const Graph grid = Graph::square_grid(4, 4);
  const EnergyMetrics metrics(grid);
  const auto embedding = grid.spectral_embedding(2);
  const torch::Tensor spectral = to_tensor(embedding.eigenvectors);
  const double lowest = embedding.eigenvalues(0) * 15.0 / (2.0 * grid.num_edges());
  CHECK(item(metrics.dirichlet_energy(spectral, Energy::ScaleInvariant)) == Approx(lowest));
  torch::manual_seed(12);
  for (int trial = 0; trial < 50; ++trial) {
    CHECK(item(metrics.dirichlet_energy(random_centred_orthonormal(16, 2), Energy::ScaleInvariant)) > lowest);
  }
}

TEST_CASE("null baseline: reproducible from its seed, centred where theory says") {
  const Graph grid = Graph::square_grid(4, 4);
  const EnergyMetrics metrics(grid);
  torch::manual_seed(13);
  const torch::Tensor x = torch::randn({3, 16, 8}, torch::kFloat64);
  const auto a = metrics.energy_null_baseline(x, Energy::ScaleInvariant, 4000, 7);
  const auto b = metrics.energy_null_baseline(x, Energy::ScaleInvariant, 4000, 7);
  const auto c = metrics.energy_null_baseline(x, Energy::ScaleInvariant, 4000, 8);
  CHECK(torch::equal(a.mean, b.mean));
  CHECK(torch::equal(a.sd, b.sd));
  CHECK_FALSE(torch::equal(a.mean, c.mean));
  CHECK(torch::allclose(a.observed, metrics.dirichlet_energy(x, Energy::ScaleInvariant)));
  // The scale-invariant energy averages exactly 1 over all relabellings.
  CHECK(torch::allclose(a.mean, torch::ones({3}, torch::kFloat64), 0, 0.03));
  CHECK(torch::allclose(a.z_score, (a.observed - a.mean) / a.sd));
  // The raw energy averages 2 |E| / (n (n - 1)) times the sum of all squared distances.
  const auto raw = metrics.energy_null_baseline(x[0], Energy::Raw, 4000, 0);
  const torch::Tensor distances = (x[0].unsqueeze(0) - x[0].unsqueeze(1)).square().sum(-1);
  const double expected = 2.0 * 24 / (16.0 * 15.0) * item(distances.sum());
  CHECK(item(raw.mean) == Approx(expected).epsilon(0.02));
}

TEST_CASE("null baseline: the spectral embedding is far below it, a random embedding is not") {
  const Graph grid = Graph::square_grid(4, 4);
  const EnergyMetrics metrics(grid);
  const torch::Tensor spectral = to_tensor(grid.spectral_embedding(2).eigenvectors);
  CHECK(item(metrics.energy_null_baseline(spectral, Energy::Normalized, 2000, 1).z_score) < -3.0);
  torch::manual_seed(14);
  const auto random = metrics.energy_null_baseline(torch::randn({16, 2}, torch::kFloat64), Energy::Normalized, 2000, 1);
  CHECK(std::abs(item(random.z_score)) < 3.5);
}

TEST_CASE("rule-following accuracy: mass on the neighbours, full and renormalised") {
  const EnergyMetrics metrics(Graph::ring(4));
  torch::Tensor p = torch::full({2, 3, 4}, 0.2);
  p[1][2] = torch::tensor({0.5f, 0.1f, 0.0f, 0.1f});
  const torch::Tensor nodes = torch::tensor({0, 1, -1, 2, 3, 0}, torch::kInt64).reshape({2, 3});
  const auto accuracy = metrics.rule_following_accuracy(p, nodes);
  CHECK(item(accuracy.full_vocabulary[0][0]) == Approx(0.4));
  CHECK(item(accuracy.renormalized[0][0]) == Approx(0.5));
  CHECK(std::isnan(item(accuracy.full_vocabulary[0][2])));
  CHECK(item(accuracy.full_vocabulary[1][2]) == Approx(0.2));  // neighbours of 0 are 1 and 3
  CHECK(item(accuracy.renormalized[1][2]) == Approx(0.2 / 0.7));
  CHECK(item(accuracy.mean_full_vocabulary[0]) == Approx(0.4));
  CHECK(item(accuracy.mean_full_vocabulary[2]) == Approx(0.2));  // only sequence 1 counts there
  CHECK(torch::equal(accuracy.scored, nodes >= 0));
  // Neighbour-pair mode: only the marked positions count; a position no sequence scores is NaN.
  const torch::Tensor scored = torch::tensor({true, false, false, true, false, false}).reshape({2, 3});
  const auto pairs = metrics.rule_following_accuracy(p, nodes, scored);
  CHECK(torch::equal(pairs.scored, scored));
  CHECK(std::isnan(item(pairs.full_vocabulary[1][2])));
  CHECK(std::isnan(item(pairs.mean_renormalized[1])));
  CHECK(item(pairs.mean_renormalized[0]) == Approx(0.5));
}

TEST_CASE("spectral alignment: 1 for a drawing of z2, z3, less for a random one") {
  const Graph grid = Graph::square_grid(4, 4);
  const EnergyMetrics metrics(grid);
  torch::manual_seed(15);
  const torch::Tensor drawing = to_tensor(grid.spectral_embedding(2).eigenvectors).matmul(
                                    torch::randn({2, 30}, torch::kFloat64)) +
                                torch::randn({30}, torch::kFloat64);
  const auto aligned = metrics.spectral_alignment(torch::stack({drawing, torch::randn({16, 30}, torch::kFloat64)}), 2);
  REQUIRE(aligned.principal_angle_cosines.sizes() == torch::IntArrayRef{2, 2});
  CHECK(torch::allclose(aligned.principal_angle_cosines[0], torch::ones({2}, torch::kFloat64)));
  CHECK(torch::allclose(aligned.r_squared[0], torch::ones({2}, torch::kFloat64)));
  CHECK(item(aligned.principal_angle_cosines[1][1]) < 0.99);
  CHECK(item(aligned.r_squared[1].max()) < 0.99);
  torch::Tensor missing = drawing.clone();
  missing[3].fill_(kNaN);
  CHECK(torch::isnan(metrics.spectral_alignment(missing, 2).r_squared).all().item<bool>());
}

TEST_CASE("graph distance correlation: 1 for a path drawn on a line") {
  const EnergyMetrics metrics(Graph::from_edges(5, {{0, 1}, {1, 2}, {2, 3}, {3, 4}}));
  const torch::Tensor line = torch::arange(5.0, torch::kFloat64).reshape({5, 1});
  CHECK(item(metrics.graph_distance_correlation(line)) == Approx(1.0));
  CHECK(item(metrics.graph_distance_correlation(torch::stack({line, -line}))[1]) == Approx(1.0));
  torch::Tensor missing = line.clone();
  missing[2] = kNaN;
  CHECK(std::isnan(item(metrics.graph_distance_correlation(missing))));
  // Pairs in different components have no path and are left out.
  const EnergyMetrics two_paths(Graph::from_edges(6, {{0, 1}, {1, 2}, {3, 4}, {4, 5}}));
  const torch::Tensor lines = torch::tensor({0.0, 1.0, 2.0, 10.0, 11.0, 12.0}, torch::kFloat64).reshape({6, 1});
  CHECK(item(two_paths.graph_distance_correlation(lines)) == Approx(1.0));
}

TEST_CASE("energy over context equals the energy of the class means, from one pass that also takes other means") {
  const Graph grid = Graph::square_grid(3, 3);
  const EnergyMetrics metrics(grid);
  const icgt::RepresentationStats stats(9);
  torch::manual_seed(4);
  const std::int64_t batch = 3, length = 240;
  torch::Tensor nodes = icgt::WalkSampler(grid, 2).random_walks(batch, length).clone();
  nodes.select(1, 0).fill_(icgt::kNotANode);  // a BOS position
  // Node-dependent signal on a large common offset, under noise: two leading dims (2 x 2 layers).
  const torch::Tensor residuals = 50.0 + torch::randn({2, 2, batch, length, 40}) +
                                  torch::randn({9, 40}).index_select(0, nodes.clamp_min(0).flatten()).view({batch, length, 40});
  const auto positions = icgt::RepresentationStats::strided_positions(length, 10, 5);
  const std::vector<std::int64_t> snapshots{30, 111, 239};
  for (Energy energy : {Energy::Raw, Energy::Normalized, Energy::ScaleInvariant}) {
    const auto result = metrics.energy_over_context(residuals, nodes, 20, positions, energy, {{100, snapshots}, {0, {7}}});
    const auto means = stats.class_means(residuals, nodes, 20, positions);
    const torch::Tensor expected = metrics.dirichlet_energy(means.means, energy);
    REQUIRE(result.energy.sizes() == expected.sizes());
    CHECK(result.energy.scalar_type() == torch::kFloat32);
    CHECK(torch::isnan(result.energy).any().item<bool>());  // the first windows miss nodes
    CHECK(torch::equal(torch::isnan(result.energy), torch::isnan(expected)));
    CHECK(torch::allclose(result.energy.nan_to_num(0.0), expected.nan_to_num(0.0), 1e-4, 0.0));
    CHECK(torch::equal(result.counts, means.counts));
    CHECK(torch::equal(result.positions, means.positions));
    REQUIRE(result.class_means.size() == 2);
    const auto wide = stats.class_means(residuals, nodes, 100, snapshots);
    CHECK(torch::allclose(result.class_means[0].means, wide.means, 1e-6, 1e-5, /*equal_nan=*/true));
    CHECK(torch::equal(result.class_means[0].counts, wide.counts));
    CHECK(torch::allclose(result.class_means[1].means, stats.class_means(residuals, nodes, 0, {7}).means, 1e-6, 1e-5,
                          /*equal_nan=*/true));
  }
}

TEST_CASE("energy over context: bad input is an error that names the argument") {
  const Graph ring = Graph::ring(4);
  const EnergyMetrics metrics(ring);
  const torch::Tensor nodes = torch::arange(40).remainder(4).reshape({2, 20});
  const torch::Tensor x = torch::randn({3, 2, 20, 5});
  CHECK_THROWS_WITH(metrics.energy_over_context(x, nodes, 25, {19}),
                    Contains("EnergyMetrics.energy_over_context: window is 25, outside the sequence of 20 positions"));
  CHECK_THROWS_WITH(metrics.energy_over_context(x, nodes, 5, {19}, Energy::Raw, {{5, {4, 3}}}),
                    Contains("class_means_at[0].positions must be strictly increasing"));
  CHECK_THROWS_WITH(metrics.energy_over_context(x, nodes, 5, {19}, Energy::Raw, {{5, {4}}, {-1, {4}}}),
                    Contains("class_means_at[1].window is -1"));
  CHECK_THROWS_WITH(metrics.energy_over_context(x, nodes + 1, 5, {19}), Contains("nodes holds 4"));
  CHECK_THROWS_WITH(metrics.energy_over_context(x, nodes.narrow(1, 0, 10), 5, {19}),
                    Contains("nodes has shape [2, 10] but residuals [3, 2, 20, 5] needs nodes [batch, length] = [2, 20]"));
  CHECK_THROWS_AS(metrics.energy_over_context(x.to(torch::kInt64), nodes, 5, {19}), icgt::TypeError);
  // A NaN only the class_means_at window reads is named as well.
  torch::Tensor bad = x.clone();
  bad[1][0][2][3] = kNaN;
  CHECK_NOTHROW(metrics.energy_over_context(bad, nodes, 5, {19}));
  CHECK_THROWS_WITH(metrics.energy_over_context(bad, nodes, 5, {19}, Energy::Raw, {{3, {4}}}),
                    Contains("residuals holds a NaN or infinite value at index (1, 0, 2)"));
  CHECK_THROWS_WITH(metrics.energy_over_context(x, nodes, 5, {19}, static_cast<Energy>(99)),
                    Contains("unknown Energy kind"));
}

TEST_CASE("energy metrics: bad input is an error that names the argument") {
  const EnergyMetrics metrics(Graph::square_grid(4, 4));
  const torch::Tensor x = torch::randn({16, 3});
  CHECK_THROWS_WITH(metrics.dirichlet_energy(x.to(torch::kInt64)),
                    Contains("EnergyMetrics.dirichlet_energy: representations has dtype Long"));
  CHECK_THROWS_WITH(metrics.dirichlet_energy(torch::randn({16})), Contains("representations has 1 dimension(s)"));
  CHECK_THROWS_WITH(metrics.dirichlet_energy(torch::randn({15, 3})),
                    Contains("whose dimension -2 (nodes) should be 16"));
  torch::Tensor partly_nan = x.clone();
  partly_nan[5][1] = kNaN;
  CHECK_THROWS_WITH(metrics.dirichlet_energy(partly_nan), Contains("row (5) holds a NaN or infinite value"));
  CHECK_THROWS_WITH(metrics.energy_null_baseline(x, Energy::Raw, 1),
                    Contains("num_relabellings is 1; expected at least 2"));
  CHECK_THROWS_AS(metrics.energy_null_baseline(torch::Tensor(), Energy::Raw), icgt::TypeError);
  CHECK_THROWS_WITH(metrics.graph_distance_correlation(torch::randn({4, 3})), Contains("should be 16"));
  CHECK_THROWS_WITH(metrics.spectral_alignment(x, 4), Contains("num_components is 4; expected 1..3 (the hidden size)"));
  CHECK_THROWS_WITH(metrics.spectral_alignment(torch::randn({16, 5}), 1),
                    Contains("num_components = 1 splits the Laplacian eigenvalue 0.585786 that z2 and z3 share"));
  CHECK_THROWS_WITH(EnergyMetrics(Graph::ring(4)).spectral_alignment(torch::randn({4, 8}), 4),
                    Contains("the graph has 3 Laplacian eigenvector(s) beyond its zero eigenvalues"));
  CHECK_THROWS_AS(metrics.spectral_alignment(x, 0), icgt::ValueError);
  CHECK_THROWS_WITH(metrics.dirichlet_energy(x, static_cast<Energy>(99)), Contains("unknown Energy kind"));
}

TEST_CASE("rule-following accuracy: bad input is an error that names the argument") {
  const EnergyMetrics metrics(Graph::ring(4));
  const torch::Tensor p = torch::full({2, 3, 4}, 0.1);
  const torch::Tensor nodes = torch::zeros({2, 3}, torch::kInt64);
  CHECK_THROWS_WITH(metrics.rule_following_accuracy(p[0], nodes), Contains("node_probabilities has 2 dimension(s)"));
  CHECK_THROWS_WITH(metrics.rule_following_accuracy(p.unsqueeze(0), nodes), Contains("expected [batch, length, nodes]"));
  CHECK_THROWS_WITH(metrics.rule_following_accuracy(torch::full({2, 3, 5}, 0.1), nodes),
                    Contains("whose dimension 2 (nodes) should be 4"));
  CHECK_THROWS_WITH(metrics.rule_following_accuracy(p, nodes.to(torch::kFloat32)), Contains("nodes has dtype Float"));
  CHECK_THROWS_WITH(metrics.rule_following_accuracy(p, torch::zeros({2, 4}, torch::kInt64)),
                    Contains("nodes has shape [2, 4] but node_probabilities [2, 3, 4] needs [batch, length] = [2, 3]"));
  CHECK_THROWS_WITH(metrics.rule_following_accuracy(p, torch::full({2, 3}, 4, torch::kInt64)),
                    Contains("nodes holds 4 at index (0, 0); expected node ids 0..3"));
  CHECK_THROWS_WITH(metrics.rule_following_accuracy(p, nodes, torch::ones({2, 3}, torch::kInt64)),
                    Contains("scored must be a bool tensor [batch, length], got Long [2, 3]"));
  CHECK_THROWS_WITH(metrics.rule_following_accuracy(p, nodes, torch::ones({3, 2}, torch::kBool)),
                    Contains("scored has shape [3, 2]"));
  CHECK_THROWS_WITH(metrics.rule_following_accuracy(p, nodes, torch::Tensor()),
                    Contains("scored must be a bool tensor [batch, length], got an undefined tensor"));
  torch::Tensor negative = p.clone();
  negative[1][2][3] = -0.1;
  CHECK_THROWS_WITH(metrics.rule_following_accuracy(negative, nodes),
                    Contains("node_probabilities holds a negative, NaN or infinite value at index (1, 2, 3)"));
  torch::Tensor not_a_number = p.clone();
  not_a_number[0][1][0] = kNaN;
  CHECK_THROWS_AS(metrics.rule_following_accuracy(not_a_number, nodes), icgt::ValueError);
  CHECK_THROWS_WITH(metrics.rule_following_accuracy(torch::full({2, 3, 4}, 0.3), nodes),
                    Contains("node_probabilities sums to more than 1 over the nodes at (batch, position) (0, 0)"));
}
