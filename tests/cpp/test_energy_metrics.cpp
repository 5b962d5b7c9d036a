#include "catch_torch.hpp"
#include "edge_sums.hpp"
#include "icgt/energy_metrics.hpp"
#include "icgt/errors.hpp"
#include "icgt/representation_stats.hpp"
#include "icgt/walk_sampler.hpp"
#include "window_sweep.hpp"

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

TEST_CASE("spectral profile: the grid's distinct Laplacian eigenvalues and their multiplicities") {
  const auto profile = EnergyMetrics(Graph::square_grid(4, 4)).spectral_profile(torch::randn({16, 3}));
  // The 4x4 grid's eigenvalues are the sums of two path eigenvalues 2 - 2 cos(pi k / 4).
  const std::vector<double> expected{0.0, 2 - std::sqrt(2.0), 4 - 2 * std::sqrt(2.0), 2.0, 4 - std::sqrt(2.0),
                                     2 + std::sqrt(2.0), 4.0, 4 + std::sqrt(2.0), 4 + 2 * std::sqrt(2.0)};
  REQUIRE(profile.eigenvalues.numel() == 9);
  for (std::int64_t k = 0; k < 9; ++k) CHECK(item(profile.eigenvalues[k]) == Approx(expected[k]).margin(1e-12));
  CHECK(profile.multiplicities.equal(torch::tensor({1, 2, 1, 2, 2, 2, 3, 2, 1}, torch::kInt64)));
  CHECK(profile.eigenvectors.sizes() == torch::IntArrayRef{16, 16});
  CHECK(torch::allclose(profile.eigenvectors.t().matmul(profile.eigenvectors), torch::eye(16, torch::kFloat64), 0,
                        1e-12));
  const auto ring = EnergyMetrics(Graph::ring(4)).spectral_profile(torch::randn({4, 2}));
  CHECK(ring.multiplicities.equal(torch::tensor({1, 2, 1}, torch::kInt64)));
}

TEST_CASE("spectral profile: means along one Laplacian eigenvector put share 1 at its eigenvalue") {
  const EnergyMetrics metrics(Graph::square_grid(4, 4));
  const torch::Tensor eigenvectors = metrics.spectral_profile(torch::randn({16, 2})).eigenvectors;
  const torch::Tensor direction = torch::tensor({1.0, -2.0, 0.5}, torch::kFloat64);
  // Eigenvector 3 has eigenvalue 4 - 2 sqrt(2), alone; eigenvector 4 is one of the two at 2. A
  // common offset does not count: the means are centred.
  for (auto [vector, eigenvalue] : {std::pair<std::int64_t, std::int64_t>{3, 2}, {4, 3}}) {
    const torch::Tensor means = torch::outer(eigenvectors.select(1, vector), direction) + 7.0;
    const auto profile = metrics.spectral_profile(means);
    CHECK(torch::allclose(profile.shares, torch::one_hot(torch::tensor(eigenvalue), 9).to(torch::kFloat64), 0, 1e-12));
    CHECK(torch::allclose(profile.eigenvector_shares, torch::one_hot(torch::tensor(vector), 16).to(torch::kFloat64), 0,
                          1e-12));
  }
  // A mix: a u_1 w^T + b u_5 v^T puts a^2 |w|^2 and b^2 |v|^2 (over their total) at their two
  // eigenvalues, 2 - sqrt(2) and 2 (eigenvector 5 is the second at 2), whatever w and v.
  const torch::Tensor w = torch::tensor({1.0, 0.0, 2.0}, torch::kFloat64), v = torch::tensor({3.0, 1.0, -1.0}, torch::kFloat64);
  const torch::Tensor mix = torch::outer(2.0 * eigenvectors.select(1, 1), w) + torch::outer(eigenvectors.select(1, 5), v);
  const double low = 4.0 * 5.0, high = 11.0;
  const auto profile = metrics.spectral_profile(mix.to(torch::kFloat32));
  CHECK(profile.shares.scalar_type() == torch::kFloat32);
  CHECK(item(profile.shares[1]) == Approx(low / (low + high)).epsilon(1e-6));
  CHECK(item(profile.shares[3]) == Approx(high / (low + high)).epsilon(1e-6));
  CHECK(item(profile.shares.sum()) == Approx(1.0).epsilon(1e-6));
}

TEST_CASE("spectral profile: batched, sums to 1, NaN for an absent node or coinciding means") {
  const EnergyMetrics metrics(Graph::hexagonal_lattice(2, 2));
  const std::int64_t n = metrics.graph().num_nodes();
  torch::manual_seed(21);
  torch::Tensor x = torch::randn({2, 3, n, 6}, torch::kFloat64) + 40.0;
  x[1][2][5].fill_(kNaN);
  x[0][1] = torch::ones({n, 6}, torch::kFloat64);
  const auto profile = metrics.spectral_profile(x);
  REQUIRE(profile.shares.sizes() == torch::IntArrayRef{2, 3, profile.eigenvalues.size(0)});
  REQUIRE(profile.eigenvector_shares.sizes() == torch::IntArrayRef{2, 3, n});
  CHECK(torch::isnan(profile.shares[1][2]).all().item<bool>());
  CHECK(torch::isnan(profile.shares[0][1]).all().item<bool>());
  CHECK(torch::isnan(profile.shares).sum().item<std::int64_t>() == 2 * profile.eigenvalues.size(0));
  const torch::Tensor totals = profile.shares.sum(-1);
  CHECK(torch::allclose(totals[0][0], torch::ones({}, torch::kFloat64)));
  CHECK(item(profile.shares[0][0][0]) == Approx(0.0).margin(1e-12));  // the constant eigenvector: none
  CHECK(torch::allclose(profile.shares[1][0], metrics.spectral_profile(x[1][0]).shares, 1e-12, 1e-14));
}

TEST_CASE("spectral profile: the fused CPU sweep and the tensor-operation sweep agree on the projections") {
  const std::int64_t num_nodes = 6, batch = 3, length = 200, hidden = 140;
  torch::manual_seed(22);
  const torch::Tensor source = torch::randn({2, batch, length, hidden}) + 5.0;
  const torch::Tensor nodes = torch::randint(num_nodes, {batch, length}, torch::kInt64);
  icgt::detail::TrailingWindows windows;
  for (std::int64_t t = 0; t < length; t += 9) {
    windows.starts.push_back(std::max<std::int64_t>(0, t - 30));
    windows.ends.push_back(t + 1);
  }
  const torch::Tensor basis = std::get<0>(torch::linalg_qr(torch::randn({num_nodes, num_nodes}, torch::kFloat64)));
  const torch::Tensor rows = basis.contiguous();
  icgt::detail::WindowSweep sweep{windows, {}, icgt::detail::WindowSweep::Output::EnergySums, {{0, 1}, {2, 5}},
                                  std::vector<double>(rows.data_ptr<double>(), rows.data_ptr<double>() + rows.numel())};
  for (bool per_sequence : {false, true}) {
    sweep.counts = icgt::detail::window_counts(nodes, num_nodes, per_sequence, windows);
    const auto fused = icgt::detail::sweep_windows_on_cpu(source, nodes, num_nodes, per_sequence, {sweep});
    const auto by_ops = icgt::detail::sweep_windows_by_tensor_ops(source, nodes, num_nodes, per_sequence, {sweep});
    const torch::Tensor sums = fused.outputs.front();
    REQUIRE(sums.size(-1) == icgt::detail::kNumEnergySums + num_nodes);
    CHECK(torch::allclose(sums, by_ops.outputs.front(), 1e-6, 1e-9, /*equal_nan=*/true));
    // An orthonormal basis: the squared projections add up to the squared deviations.
    const torch::Tensor present = sums.select(-1, 0).isfinite();
    CHECK(present.any().item<bool>());
    CHECK(torch::allclose(sums.narrow(-1, icgt::detail::kNumEnergySums, num_nodes).sum(-1).masked_select(present),
                          sums.select(-1, icgt::detail::kSquaredDeviations).masked_select(present), 1e-9));
  }
}

TEST_CASE("spectral profile over context equals the profile of the class means, from the same pass") {
  const Graph grid = Graph::square_grid(3, 3);
  const EnergyMetrics metrics(grid);
  torch::manual_seed(23);
  const std::int64_t batch = 3, length = 240;
  torch::Tensor nodes = icgt::WalkSampler(grid, 5).random_walks(batch, length).clone();
  nodes.select(1, 0).fill_(icgt::kNotANode);
  const torch::Tensor residuals = 50.0 + torch::randn({2, 2, batch, length, 40}) +
                                  torch::randn({9, 40}).index_select(0, nodes.clamp_min(0).flatten()).view({batch, length, 40});
  const auto positions = icgt::RepresentationStats::strided_positions(length, 10, 5);
  const auto plain = metrics.energy_over_context(residuals, nodes, 20, positions);
  CHECK_FALSE(plain.spectral_profile.has_value());
  const auto result = metrics.energy_over_context(residuals, nodes, 20, positions, Energy::Normalized, {}, true);
  REQUIRE(result.spectral_profile.has_value());
  CHECK(torch::allclose(result.energy, plain.energy, 0, 0, /*equal_nan=*/true));  // the energy is unchanged
  const auto means = icgt::RepresentationStats(9).class_means(residuals, nodes, 20, positions).means;
  const auto expected = metrics.spectral_profile(means);
  const auto& profile = *result.spectral_profile;
  REQUIRE(profile.shares.sizes() == expected.shares.sizes());  // [2, 2, snapshots, K]
  CHECK(profile.shares.scalar_type() == torch::kFloat32);
  CHECK(torch::isnan(profile.shares).any().item<bool>());  // the first windows miss nodes
  CHECK(torch::equal(torch::isnan(profile.shares.select(-1, 0)), torch::isnan(result.energy)));
  CHECK(torch::allclose(profile.shares, expected.shares, 1e-4, 1e-6, /*equal_nan=*/true));
  CHECK(torch::allclose(profile.eigenvector_shares, expected.eigenvector_shares, 1e-4, 1e-6, /*equal_nan=*/true));
  CHECK(torch::equal(profile.eigenvalues, expected.eigenvalues));
  CHECK(torch::equal(profile.multiplicities, expected.multiplicities));
}

TEST_CASE("spectral profile: bad input is an error that names the argument") {
  const EnergyMetrics metrics(Graph::square_grid(4, 4));
  CHECK_THROWS_WITH(metrics.spectral_profile(torch::randn({15, 3})),
                    Contains("EnergyMetrics.spectral_profile: class_means has shape [15, 3], whose dimension -2 "
                             "(nodes) should be 16"));
  CHECK_THROWS_WITH(metrics.spectral_profile(torch::randn({16})), Contains("class_means has 1 dimension(s)"));
  CHECK_THROWS_WITH(metrics.spectral_profile(torch::zeros({16, 3}, torch::kInt64)),
                    Contains("EnergyMetrics.spectral_profile: class_means has dtype Long"));
  CHECK_THROWS_WITH(metrics.spectral_profile(torch::zeros({16, 0})), Contains("0 dimensions per node"));
  torch::Tensor partly_nan = torch::randn({16, 3});
  partly_nan[2][1] = kNaN;
  CHECK_THROWS_WITH(metrics.spectral_profile(partly_nan), Contains("row (2) holds a NaN or infinite value"));
  CHECK_THROWS_AS(metrics.spectral_profile(torch::Tensor()), icgt::TypeError);
}
