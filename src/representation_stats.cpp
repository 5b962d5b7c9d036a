#include "icgt/representation_stats.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "centred_svd.hpp"
#include "icgt/errors.hpp"
#include "nan.hpp"
#include "sweep_arguments.hpp"
#include "sweep_results.hpp"
#include "tensor_checks.hpp"

namespace icgt {

using detail::kNaN;

RepresentationStats::RepresentationStats(std::int64_t num_nodes) : num_nodes_(num_nodes) {
  if (num_nodes <= 0) {
    throw ValueError(fmt::format("RepresentationStats: num_nodes must be positive, got {}", num_nodes));
  }
}

std::vector<std::int64_t> RepresentationStats::strided_positions(std::int64_t length, std::int64_t stride,
                                                                 std::int64_t first) {
  const char* function = "RepresentationStats.strided_positions";
  if (length <= 0) throw ValueError(fmt::format("{}: length must be positive, got {}", function, length));
  if (stride <= 0) throw ValueError(fmt::format("{}: stride must be positive, got {}", function, stride));
  if (first < 0 || first >= length) {
    throw ValueError(fmt::format("{}: first is {}, outside the sequence; expected 0..{}", function, first, length - 1));
  }
  std::vector<std::int64_t> positions;
  for (std::int64_t t = first; t < length; t += stride) positions.push_back(t);
  return positions;
}

RepresentationStats::ClassMeans RepresentationStats::class_means(const torch::Tensor& residuals,
                                                                 const torch::Tensor& nodes, std::int64_t window,
                                                                 const std::vector<std::int64_t>& positions) const {
  return sweep(residuals, nodes, window, positions, /*per_sequence=*/false, "class_means");
}

RepresentationStats::ClassMeans RepresentationStats::class_means_per_sequence(
    const torch::Tensor& residuals, const torch::Tensor& nodes, std::int64_t window,
    const std::vector<std::int64_t>& positions) const {
  return sweep(residuals, nodes, window, positions, /*per_sequence=*/true, "class_means_per_sequence");
}

RepresentationStats::ClassMeans RepresentationStats::sweep(const torch::Tensor& residuals,
                                                           const torch::Tensor& nodes, std::int64_t window,
                                                           const std::vector<std::int64_t>& positions,
                                                           bool per_sequence, const char* method) const {
  const std::string function = fmt::format("RepresentationStats.{}", method);
  const torch::NoGradGuard statistics_carry_no_autograd_history;
  const detail::SweepInput input = detail::check_sweep_input(residuals, nodes, num_nodes_, function);
  detail::WindowSweep sweep{detail::trailing_windows(window, positions, input.rows.size(2), function), {},
                            detail::WindowSweep::Output::ClassMeans, {}};
  sweep.counts = detail::window_counts(input.node_ids, num_nodes_, per_sequence, sweep.windows);
  const detail::SweepResults results =
      detail::sweep_windows(input.rows, input.node_ids, num_nodes_, per_sequence, {sweep});
  if (!results.finite) detail::throw_non_finite(input, {sweep}, function);
  return detail::class_means_result(input, sweep, results.outputs.front(), positions, per_sequence);
}

RepresentationStats::PrincipalComponents RepresentationStats::principal_components(const torch::Tensor& class_means,
                                                                                   std::int64_t num_components) const {
  const std::string function = "RepresentationStats.principal_components";
  const torch::NoGradGuard statistics_carry_no_autograd_history;
  detail::check_floating(class_means, 2, function, "class_means", "[..., nodes, hidden]");
  detail::check_size(class_means, -2, num_nodes_, function, "class_means", "nodes");
  const std::int64_t hidden = class_means.size(-1);
  const std::int64_t most = std::min(num_nodes_ - 1, hidden);
  if (num_components < 1 || num_components > most) {
    throw ValueError(fmt::format("{}: num_components is {}; expected 1..{} (min(nodes - 1, hidden): centred means "
                                 "of {} nodes span at most {} dimensions)",
                                 function, num_components, most, num_nodes_, num_nodes_ - 1));
  }
  const torch::Tensor means = class_means.to(detail::compute_dtype(class_means));
  const torch::Tensor present = detail::present_rows(means, function, "class_means");
  const auto svd = detail::centred_svd(means, present, num_components);

  const torch::Tensor singular = svd.singular.narrow(-1, 0, num_components);
  const torch::Tensor ratio = singular.square() / svd.singular.square().sum(-1, /*keepdim=*/true);
  const torch::Tensor projections = (svd.u * singular.unsqueeze(-2)).masked_fill_(~present.unsqueeze(-1), kNaN);
  // Fewer than num_components + 1 present nodes span fewer than num_components directions.
  const torch::Tensor undefined = present.sum(-1) <= num_components;
  const auto nan_where_undefined = [&](const torch::Tensor& values, std::int64_t trailing_dims) {
    torch::Tensor mask = undefined;
    for (std::int64_t i = 0; i < trailing_dims; ++i) mask = mask.unsqueeze(-1);
    return values.masked_fill(mask, kNaN);
  };
  return {nan_where_undefined(svd.vh, 2), nan_where_undefined(ratio, 1), nan_where_undefined(projections, 2),
          svd.mean};
}

RepresentationStats::PrincipalComponents RepresentationStats::align_snapshots(const PrincipalComponents& components,
                                                                              Alignment alignment) {
  const std::string function = "RepresentationStats.align_snapshots";
  const torch::NoGradGuard statistics_carry_no_autograd_history;
  const torch::Tensor& projections = components.projections;
  detail::check_floating(projections, 3, function, "projections", "[..., snapshots, nodes, k]");
  const std::int64_t num_snapshots = projections.size(-3), k = projections.size(-1);
  if (num_snapshots == 0) {
    throw ValueError(fmt::format("{}: projections {} holds no snapshot; expected at least one in [..., snapshots, "
                                 "nodes, k]",
                                 function, detail::shape_of(projections)));
  }
  detail::check_floating(components.components, 3, function, "components", "[..., snapshots, k, hidden]");
  detail::check_floating(components.explained_variance_ratio, 2, function, "explained_variance_ratio",
                         "[..., snapshots, k]");
  const auto snapshot_shape = projections.sizes().slice(0, projections.dim() - 2);
  const auto component_shape = components.components.sizes();
  if (component_shape.slice(0, component_shape.size() - 2) != snapshot_shape ||
      components.components.size(-2) != k ||
      components.explained_variance_ratio.sizes() != component_shape.slice(0, component_shape.size() - 1)) {
    throw ValueError(fmt::format("{}: components {} and explained_variance_ratio {} do not match projections {} "
                                 "([..., snapshots, nodes, k] needs [..., snapshots, k, hidden] and [..., snapshots, k])",
                                 function, detail::shape_of(components.components),
                                 detail::shape_of(components.explained_variance_ratio), detail::shape_of(projections)));
  }

  PrincipalComponents aligned{components.components.clone(), components.explained_variance_ratio.clone(),
                              projections.clone(), components.mean};
  const torch::Tensor identity = torch::eye(k, projections.options());
  torch::Tensor reference = projections.select(-3, 0);
  for (std::int64_t s = 1; s < num_snapshots; ++s) {
    const torch::Tensor current = projections.select(-3, s);
    const torch::Tensor present = torch::isfinite(current).all(-1);
    const torch::Tensor common = (present & torch::isfinite(reference).all(-1)).unsqueeze(-1);
    const torch::Tensor overlap =
        torch::matmul(torch::where(common, current, 0.0).transpose(-1, -2), torch::where(common, reference, 0.0));
    torch::Tensor map;
    if (alignment == Alignment::SignFlip) {
      map = torch::diag_embed(torch::where(overlap.diagonal(0, -2, -1) < 0, -1.0, 1.0).to(projections.scalar_type()));
    } else {
      auto [u, singular, vh] = torch::linalg_svd(overlap);
      // With no node in common the overlap is zero and any orthogonal map fits: keep the axes.
      map = torch::where((overlap == 0).all(-1).all(-1).unsqueeze(-1).unsqueeze(-1), identity, torch::matmul(u, vh));
    }
    const torch::Tensor turned = torch::matmul(current, map);
    aligned.projections.select(-3, s).copy_(turned);
    aligned.components.select(-3, s).copy_(torch::matmul(map.transpose(-1, -2), components.components.select(-3, s)));
    aligned.explained_variance_ratio.select(-2, s).copy_(
        torch::matmul(map.square().transpose(-1, -2), components.explained_variance_ratio.select(-2, s).unsqueeze(-1))
            .squeeze(-1));
    reference = torch::where(present.any(-1).unsqueeze(-1).unsqueeze(-1), turned, reference);
  }
  return aligned;
}

}  // namespace icgt
