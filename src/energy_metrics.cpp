#include "icgt/energy_metrics.hpp"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <vector>

#include "centred_svd.hpp"
#include "edge_sums.hpp"
#include "icgt/errors.hpp"
#include "laplacian_spectrum.hpp"
#include "nan.hpp"
#include "random.hpp"
#include "sweep_arguments.hpp"
#include "sweep_results.hpp"
#include "tensor_checks.hpp"

namespace icgt {

using detail::kNaN;

namespace {

// Eigen stores column-major; the tensor is a row-major copy.
torch::Tensor to_tensor(const Eigen::MatrixXd& matrix) {
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> row_major = matrix;
  return torch::from_blob(row_major.data(), {matrix.rows(), matrix.cols()}, torch::kFloat64).clone();
}

// ||x_i - x_j||^2 for all node pairs, [..., nodes, nodes], in float64 from the centred Gram
// matrix. All rows count as present: an absent (NaN) row makes every distance of its leading
// index NaN.
torch::Tensor pairwise_squared_distances(const torch::Tensor& representations) {
  const torch::Tensor all_present =
      torch::ones(representations.sizes().slice(0, representations.dim() - 1),
                  representations.options().dtype(torch::kBool));
  const torch::Tensor gram = detail::centred_gram(representations, all_present).gram;
  const torch::Tensor norms = gram.diagonal(0, -2, -1);
  torch::Tensor distances = (norms.unsqueeze(-1) + norms.unsqueeze(-2) - 2 * gram).clamp_min(0);
  distances.diagonal(0, -2, -1).zero_();
  return distances;
}

}  // namespace

EnergyMetrics::EnergyMetrics(Graph graph) : graph_(std::move(graph)) {
  adjacency_ = to_tensor(graph_.adjacency());
  path_lengths_ = to_tensor(graph_.shortest_path_lengths().cast<double>());
  // A node starts a new component when no node before it reaches it.
  const auto reach = path_lengths_.accessor<double, 2>();
  for (int node = 0; node < graph_.num_nodes(); ++node) {
    bool reached = false;
    for (int earlier = 0; earlier < node && !reached; ++earlier) reached = reach[earlier][node] >= 0;
    if (!reached) ++num_connected_components_;
  }
}

namespace {

// Checks representations [..., nodes, d] of a graph with num_nodes nodes and returns them in the
// compute dtype.
torch::Tensor checked_representations(const torch::Tensor& representations, std::int64_t num_nodes,
                                      const std::string& function, const char* argument) {
  detail::check_floating(representations, 2, function, argument, "[..., nodes, d]");
  detail::check_size(representations, -2, num_nodes, function, argument, "nodes");
  if (representations.size(-1) == 0) {
    throw ValueError(fmt::format("{}: {} has shape {}, 0 dimensions per node; expected at least one", function,
                                 argument, detail::shape_of(representations)));
  }
  const torch::Tensor x = representations.to(detail::compute_dtype(representations));
  detail::present_rows(x, function, argument);
  return x;
}

// Every energy is factor * sum_ij A_ij ||x_i - x_j||^2 (ordered pairs) with a factor that
// relabelling the nodes does not change; this is that factor, shaped like `energies` [...], from
// the representations' sum of squared norms (for Normalized) or of squared deviations from their
// mean (for ScaleInvariant), d dimensions, n nodes. The one place that defines the three energies.
torch::Tensor energy_factor(EnergyMetrics::Energy energy, const torch::Tensor& energies,
                            const torch::Tensor& squared_norms, const torch::Tensor& squared_deviations, double d,
                            double n, double num_edges) {
  switch (energy) {
    case EnergyMetrics::Energy::Raw:
      return torch::ones_like(energies);
    case EnergyMetrics::Energy::Normalized:
      return 0.5 / (d * squared_norms);
    case EnergyMetrics::Energy::ScaleInvariant:
      // sum_{i != j} ||x_i - x_j||^2 = 2 n * (total squared deviation from the mean).
      return (n * (n - 1)) / (2.0 * num_edges * 2.0 * n * squared_deviations);
  }
  throw ValueError("EnergyMetrics: unknown Energy kind");
}

// The factor for representations x [..., nodes, d], computing only the sum it needs: [...].
torch::Tensor energy_factor_of(const torch::Tensor& x, EnergyMetrics::Energy energy, double num_edges) {
  torch::Tensor squared_norms, squared_deviations;
  if (energy == EnergyMetrics::Energy::Normalized) {
    squared_norms = torch::linalg_vector_norm(x, 2, {-2, -1}).square();
  } else if (energy == EnergyMetrics::Energy::ScaleInvariant) {
    // Deviations taken node by node (centring first: a large common mean would cancel the digits
    // away).
    const torch::Tensor mean = x.mean(-2);
    squared_deviations = torch::zeros_like(mean.select(-1, 0));
    torch::Tensor difference = torch::empty_like(mean);
    for (std::int64_t node = 0; node < x.size(-2); ++node) {
      torch::sub_out(difference, x.select(-2, node), mean);
      squared_deviations.add_(difference.square_().sum(-1));
    }
  }
  return energy_factor(energy, x.select(-1, 0).select(-1, 0), squared_norms, squared_deviations,
                       static_cast<double>(x.size(-1)), static_cast<double>(x.size(-2)), num_edges);
}

}  // namespace

torch::Tensor EnergyMetrics::dirichlet_energy(const torch::Tensor& representations, Energy energy) const {
  const torch::NoGradGuard statistics_carry_no_autograd_history;
  const torch::Tensor x = checked_representations(representations, graph_.num_nodes(),
                                                  "EnergyMetrics.dirichlet_energy", "representations");
  // Ordered pairs: each undirected edge twice.
  return 2 * detail::edge_square_sums(x, graph_.edges()) * energy_factor_of(x, energy, graph_.num_edges());
}

EnergyMetrics::EnergyOverContext EnergyMetrics::energy_over_context(const torch::Tensor& residuals,
                                                                  const torch::Tensor& nodes, std::int64_t window,
                                                                  const std::vector<std::int64_t>& positions,
                                                                  Energy energy,
                                                                  const std::vector<Snapshots>& class_means_at,
                                                                  bool with_spectral_profile) const {
  const std::string function = "EnergyMetrics.energy_over_context";
  const torch::NoGradGuard statistics_carry_no_autograd_history;
  const std::int64_t n = graph_.num_nodes();
  const detail::SweepInput input = detail::check_sweep_input(residuals, nodes, n, function);
  const std::int64_t length = input.rows.size(2);
  std::vector<detail::WindowSweep> sweeps{{detail::trailing_windows(window, positions, length, function), {},
                                           detail::WindowSweep::Output::EnergySums, graph_.edges()}};
  for (std::size_t i = 0; i < class_means_at.size(); ++i) {
    sweeps.push_back({detail::trailing_windows(class_means_at[i].window, class_means_at[i].positions, length,
                                               function, fmt::format("class_means_at[{}].", i)),
                      {}, detail::WindowSweep::Output::ClassMeans, {}});
  }
  for (detail::WindowSweep& sweep : sweeps) {
    sweep.counts = detail::window_counts(input.node_ids, n, /*per_sequence=*/false, sweep.windows);
  }
  std::optional<detail::LaplacianSpectrum> spectrum;
  if (with_spectral_profile) {
    spectrum = detail::laplacian_spectrum(graph_);
    sweeps.front().spectral_basis = detail::row_major(spectrum->eigenvectors);
  }
  const detail::SweepResults results =
      detail::sweep_windows(input.rows, input.node_ids, n, /*per_sequence=*/false, sweeps);
  if (!results.finite) detail::throw_non_finite(input, sweeps, function);

  // outputs[0]: [leading, 1, snapshots, sums]; ordered pairs count each undirected edge twice.
  const torch::Tensor sums = results.outputs.front().squeeze(1);
  const torch::Tensor edge_squares = sums.select(-1, detail::kEdgeSquares);
  const torch::Tensor energies =
      2 * edge_squares *
      energy_factor(energy, edge_squares, sums.select(-1, detail::kSquaredNorms),
                    sums.select(-1, detail::kSquaredDeviations), static_cast<double>(input.rows.size(3)),
                    static_cast<double>(n), graph_.num_edges());
  std::vector<std::int64_t> energy_shape(input.leading_shape);
  energy_shape.push_back(static_cast<std::int64_t>(positions.size()));
  EnergyOverContext result{energies.to(detail::compute_dtype(residuals)).reshape(energy_shape),
                           sweeps.front().counts.squeeze(0), detail::int64_tensor(positions, input.rows.device()),
                           {}};
  for (std::size_t i = 0; i < class_means_at.size(); ++i) {
    result.class_means.push_back(detail::class_means_result(input, sweeps[i + 1], results.outputs[i + 1],
                                                            class_means_at[i].positions, /*per_sequence=*/false));
  }
  if (spectrum) {
    // NaN where a node is absent: nan_where_a_node_is_absent filled the whole row of sums.
    SpectralProfile profile = detail::spectral_profile_of(*spectrum, sums.narrow(-1, detail::kNumEnergySums, n),
                                                  detail::compute_dtype(residuals));
    const auto reshaped = [&](const torch::Tensor& values) {
      std::vector<std::int64_t> shape(energy_shape);
      shape.push_back(values.size(-1));
      return values.reshape(shape);
    };
    profile.shares = reshaped(profile.shares);
    profile.eigenvector_shares = reshaped(profile.eigenvector_shares);
    result.spectral_profile = std::move(profile);
  }
  return result;
}

EnergyMetrics::NullBaseline EnergyMetrics::energy_null_baseline(const torch::Tensor& representations, Energy energy,
                                                                std::int64_t num_relabellings,
                                                                std::uint64_t seed) const {
  const torch::NoGradGuard statistics_carry_no_autograd_history;
  const std::string function = "EnergyMetrics.energy_null_baseline";
  const torch::Tensor x = checked_representations(representations, graph_.num_nodes(), function, "representations");
  if (num_relabellings < 2) {
    throw ValueError(fmt::format("{}: num_relabellings is {}; expected at least 2 for a standard deviation",
                                 function, num_relabellings));
  }
  const std::int64_t n = graph_.num_nodes();
  detail::check_memory(8.0 * static_cast<double>(num_relabellings) *
                           (static_cast<double>(n * n) + static_cast<double>(x.numel() / std::max<std::int64_t>(1, x.size(-1) * n))),
                       function, fmt::format("{} relabellings of {} nodes", num_relabellings, n));
  // Relabelled adjacency A'_ij = A_{perm(i) perm(j)}, one per row, from Fisher-Yates shuffles.
  RandomGenerator generator(seed);
  const torch::Tensor relabelled = torch::empty({num_relabellings, n * n}, torch::kFloat64);
  const auto adjacency = adjacency_.accessor<double, 2>();
  auto out = relabelled.accessor<double, 2>();
  std::vector<std::int64_t> perm(n);
  for (std::int64_t r = 0; r < num_relabellings; ++r) {
    std::iota(perm.begin(), perm.end(), 0);
    for (std::int64_t i = n - 1; i > 0; --i) {
      std::swap(perm[i], perm[generator.bounded(static_cast<std::uint32_t>(i + 1))]);
    }
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t j = 0; j < n; ++j) out[r][i * n + j] = adjacency[perm[i]][perm[j]];
    }
  }
  const torch::Tensor null_energies =
      torch::matmul(pairwise_squared_distances(x).flatten(-2), relabelled.to(x.device()).t()) *
      energy_factor_of(x, energy, graph_.num_edges()).to(torch::kFloat64).unsqueeze(-1);
  const torch::Tensor observed = dirichlet_energy(x, energy);
  const torch::Tensor mean = null_energies.mean(-1).to(x.scalar_type());
  const torch::Tensor sd = null_energies.std(-1).to(x.scalar_type());
  const torch::Tensor at_most = (null_energies <= observed.to(torch::kFloat64).unsqueeze(-1)).sum(-1);
  const torch::Tensor p_value = ((at_most + 1).to(torch::kFloat64) / static_cast<double>(num_relabellings + 1))
                                    .masked_fill(observed.isnan(), kNaN)
                                    .to(x.scalar_type());
  return {observed, mean, sd, (observed - mean) / sd, p_value};
}

EnergyMetrics::RuleFollowing EnergyMetrics::rule_following_accuracy(const torch::Tensor& node_probabilities,
                                                                    const torch::Tensor& nodes,
                                                                    const std::optional<torch::Tensor>& scored) const {
  const torch::NoGradGuard statistics_carry_no_autograd_history;
  const std::string function = "EnergyMetrics.rule_following_accuracy";
  const std::int64_t n = graph_.num_nodes();
  detail::check_floating(node_probabilities, 3, function, "node_probabilities", "[batch, length, nodes]");
  if (node_probabilities.dim() != 3) {
    throw TypeError(fmt::format("{}: node_probabilities has shape {}; expected [batch, length, nodes]", function,
                                detail::shape_of(node_probabilities)));
  }
  detail::check_size(node_probabilities, 2, n, function, "node_probabilities", "nodes");
  detail::check_integer(nodes, 2, function, "nodes", "[batch, length]");
  const std::int64_t batch = node_probabilities.size(0), length = node_probabilities.size(1);
  const auto check_batch_and_length = [&](const torch::Tensor& tensor, const char* argument) {
    if (tensor.size(0) != batch || tensor.size(1) != length) {
      throw ValueError(fmt::format("{}: {} has shape {} but node_probabilities {} needs [batch, length] = [{}, {}]",
                                   function, argument, detail::shape_of(tensor),
                                   detail::shape_of(node_probabilities), batch, length));
    }
  };
  check_batch_and_length(nodes, "nodes");
  const torch::Device device = node_probabilities.device();
  const torch::Tensor node_ids = nodes.to(device, torch::kInt64);
  detail::check_node_ids(node_ids, n, function, "nodes");
  torch::Tensor counted = node_ids >= 0;
  if (scored) {
    if (!scored->defined() || scored->scalar_type() != torch::kBool || scored->dim() != 2) {
      throw TypeError(fmt::format("{}: scored must be a bool tensor [batch, length], got {}", function,
                                  scored->defined() ? fmt::format("{} {}", c10::toString(scored->scalar_type()),
                                                                  detail::shape_of(*scored))
                                                    : std::string("an undefined tensor")));
    }
    check_batch_and_length(*scored, "scored");
    counted = counted & scored->to(device);
  }

  const torch::Tensor p = node_probabilities.to(detail::compute_dtype(node_probabilities));
  const torch::Tensor invalid = (~torch::isfinite(p)) | (p < 0);
  if (invalid.any().item<bool>()) {
    throw ValueError(fmt::format("{}: node_probabilities holds a negative, NaN or infinite value at index {}; expected "
                                 "probabilities (softmax outputs, not logits)",
                                 function, detail::first_true_index(invalid)));
  }
  const torch::Tensor total = p.sum(-1);
  const torch::Tensor too_much = total > 1.0 + 1e-3;
  if (too_much.any().item<bool>()) {
    throw ValueError(fmt::format("{}: node_probabilities sums to more than 1 over the nodes at (batch, position) {}; "
                                 "expected the node tokens' share of one full-vocabulary softmax",
                                 function, detail::first_true_index(too_much)));
  }
  const torch::Tensor valid_next =
      adjacency_.to(device, p.scalar_type()).index_select(0, node_ids.clamp_min(0).flatten()).view({batch, length, n});
  const torch::Tensor mass = (p * valid_next).sum(-1);
  const torch::Tensor full_vocabulary = torch::where(counted, mass, kNaN);
  const torch::Tensor renormalized = torch::where(counted, mass / total, kNaN);
  return {full_vocabulary, renormalized, torch::nanmean(full_vocabulary, 0), torch::nanmean(renormalized, 0),
          counted};
}

EnergyMetrics::SpectralAlignment EnergyMetrics::spectral_alignment(const torch::Tensor& class_means,
                                                                   std::int64_t num_components,
                                                                   std::int64_t first_component) const {
  const torch::NoGradGuard statistics_carry_no_autograd_history;
  const std::string function = "EnergyMetrics.spectral_alignment";
  detail::check_floating(class_means, 2, function, "class_means", "[..., nodes, hidden]");
  detail::check_size(class_means, -2, graph_.num_nodes(), function, "class_means", "nodes");
  const torch::Tensor x = class_means.to(detail::compute_dtype(class_means));
  if (num_components < 1 || num_components > x.size(-1)) {
    throw ValueError(fmt::format("{}: num_components is {}; expected 1..{} (the hidden size)", function,
                                 num_components, x.size(-1)));
  }
  const std::int64_t available = graph_.num_nodes() - num_connected_components_;
  if (num_components > available) {
    throw ValueError(fmt::format("{}: num_components is {}, but the graph has {} Laplacian eigenvector(s) beyond its "
                                 "zero eigenvalues (one per connected component)",
                                 function, num_components, available));
  }
  const std::int64_t components = first_component + num_components;
  if (first_component < 0 || components > std::min(x.size(-1), x.size(-2) - 1)) {
    throw ValueError(fmt::format("{}: first_component {} and num_components {} ask for PCs up to {}; {} nodes of "
                                 "width {} have at most {}",
                                 function, first_component, num_components, components, x.size(-2), x.size(-1),
                                 std::min(x.size(-1), x.size(-2) - 1)));
  }
  // One eigenvector more than needed, when there is one, to see whether z(k+1) and z(k+2) share
  // an eigenvalue: then the span of z2..z(k+1) would be an arbitrary choice within its eigenspace.
  const auto embedding = graph_.spectral_embedding(static_cast<int>(std::min(num_components + 1, available)));
  if (num_components < available) {
    const double last = embedding.eigenvalues(num_components - 1), next = embedding.eigenvalues(num_components);
    if (next - last <= 1e-9 * std::max(1.0, next)) {
      throw ValueError(fmt::format("{}: num_components = {} splits the Laplacian eigenvalue {:.6g} that z{} and z{} "
                                   "share, so z2..z{} would be an arbitrary choice; take more or fewer components",
                                   function, num_components, last, num_components + 1, num_components + 2,
                                   num_components + 1));
    }
  }

  const torch::Tensor present = detail::present_rows(x, function, "class_means");
  const auto svd = detail::centred_svd(x, present, components);
  const torch::Tensor pc_basis = svd.u.narrow(-1, first_component, num_components);
  const torch::Tensor eigenvectors =
      to_tensor(embedding.eigenvectors.leftCols(num_components)).to(x.device(), x.scalar_type());
  const torch::Tensor overlap = torch::matmul(pc_basis.transpose(-1, -2), eigenvectors);
  const torch::Tensor cosines = torch::linalg_svdvals(overlap).clamp_max(1.0);
  const torch::Tensor r_squared = overlap.square().sum(-1);
  // Without every node, or with means that span fewer than k directions, the PC basis is not
  // defined.
  const double tiny = 100 * std::numeric_limits<float>::epsilon();
  const torch::Tensor defined =
      present.all(-1) & (svd.singular.select(-1, components - 1) > tiny * svd.singular.select(-1, 0));
  return {torch::where(defined.unsqueeze(-1), cosines, kNaN), torch::where(defined.unsqueeze(-1), r_squared, kNaN)};
}

EnergyMetrics::SpectralProfile EnergyMetrics::spectral_profile(const torch::Tensor& class_means) const {
  const torch::NoGradGuard statistics_carry_no_autograd_history;
  const torch::Tensor x =
      checked_representations(class_means, graph_.num_nodes(), "EnergyMetrics.spectral_profile", "class_means");
  const torch::Tensor x64 = x.to(torch::kFloat64);
  // An absent node's NaN row makes the mean over nodes, hence every projection, NaN.
  const torch::Tensor deviations = x64 - x64.mean(-2, /*keepdim=*/true);
  const detail::LaplacianSpectrum spectrum = detail::laplacian_spectrum(graph_);
  const torch::Tensor basis = to_tensor(spectrum.eigenvectors).to(x.device());
  return detail::spectral_profile_of(spectrum, torch::matmul(basis.t(), deviations).square().sum(-1), x.scalar_type());
}

torch::Tensor EnergyMetrics::graph_distance_correlation(const torch::Tensor& representations) const {
  const torch::NoGradGuard statistics_carry_no_autograd_history;
  const torch::Tensor x = checked_representations(representations, graph_.num_nodes(),
                                                  "EnergyMetrics.graph_distance_correlation", "representations");
  const torch::Device device = x.device();
  const torch::Tensor lengths = path_lengths_.to(device);
  const torch::Tensor pairs = (torch::triu(torch::ones_like(lengths), 1) > 0) & (lengths > 0);
  const torch::Tensor path = lengths.masked_select(pairs);
  const torch::Tensor distance =
      pairwise_squared_distances(x).sqrt().flatten(-2).index_select(-1, pairs.flatten().nonzero().squeeze(-1));
  const torch::Tensor path_deviation = path - path.mean();
  const torch::Tensor distance_deviation = distance - distance.mean(-1, /*keepdim=*/true);
  const torch::Tensor correlation = (distance_deviation * path_deviation).sum(-1) /
                                    (distance_deviation.square().sum(-1) * path_deviation.square().sum()).sqrt();
  return correlation.to(x.scalar_type());
}

}  // namespace icgt
