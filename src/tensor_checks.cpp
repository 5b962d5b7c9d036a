#include "tensor_checks.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <unistd.h>

#include "icgt/errors.hpp"
#include "icgt/graph.hpp"

namespace icgt::detail {

torch::ScalarType compute_dtype(const torch::Tensor& tensor) {
  return tensor.scalar_type() == torch::kFloat64 ? torch::kFloat64 : torch::kFloat32;
}

void check_memory(double bytes, const std::string& function, const std::string& what) {
  const double physical = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
  if (physical > 0 && bytes > physical) {
    constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
    throw ValueError(fmt::format("{}: {} would need about {:.1f} GiB of memory, more than this machine's {:.1f} GiB",
                                 function, what, bytes / kGiB, physical / kGiB));
  }
}

std::string shape_of(const torch::Tensor& tensor) { return fmt::format("[{}]", fmt::join(tensor.sizes(), ", ")); }

std::string escaped(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += c;
    }
  }
  return out;
}

void check_floating(const torch::Tensor& tensor, std::int64_t min_rank, const std::string& function,
                    const char* argument, const char* layout) {
  if (!tensor.defined()) {
    throw TypeError(fmt::format("{}: {} is an undefined tensor; expected a floating-point tensor {}", function,
                                argument, layout));
  }
  if (!tensor.is_floating_point()) {
    throw TypeError(fmt::format("{}: {} has dtype {}; expected a floating-point tensor {}", function, argument,
                                c10::toString(tensor.scalar_type()), layout));
  }
  if (tensor.dim() < min_rank) {
    throw TypeError(fmt::format("{}: {} has {} dimension(s) (shape {}); expected {}", function, argument,
                                tensor.dim(), shape_of(tensor), layout));
  }
}

void check_integer(const torch::Tensor& tensor, std::int64_t rank, const std::string& function, const char* argument,
                   const char* layout) {
  if (!tensor.defined()) {
    throw TypeError(
        fmt::format("{}: {} is an undefined tensor; expected an integer tensor {}", function, argument, layout));
  }
  if (!c10::isIntegralType(tensor.scalar_type(), /*includeBool=*/false)) {
    throw TypeError(fmt::format("{}: {} has dtype {}; expected an integer tensor {}", function, argument,
                                c10::toString(tensor.scalar_type()), layout));
  }
  if (tensor.dim() != rank) {
    throw TypeError(fmt::format("{}: {} has {} dimension(s) (shape {}); expected {}", function, argument,
                                tensor.dim(), shape_of(tensor), layout));
  }
}

void check_size(const torch::Tensor& tensor, std::int64_t dim, std::int64_t expected, const std::string& function,
                const char* argument, const char* meaning) {
  if (tensor.size(dim) != expected) {
    throw ValueError(fmt::format("{}: {} has shape {}, whose dimension {} ({}) should be {}", function, argument,
                                 shape_of(tensor), dim, meaning, expected));
  }
}

void check_node_ids(const torch::Tensor& nodes, std::int64_t num_nodes, const std::string& function,
                    const char* argument) {
  const torch::Tensor bad = (nodes < kNotANode) | (nodes >= num_nodes);
  if (bad.any().item<bool>()) {
    const auto first = bad.flatten().nonzero()[0][0].item<std::int64_t>();
    const auto value = nodes.flatten()[first].item<std::int64_t>();
    throw ValueError(fmt::format("{}: {} holds {} at index {}; expected node ids 0..{} or {} (not a node)", function,
                                 argument, value, first_true_index(bad), num_nodes - 1, kNotANode));
  }
}

torch::Tensor present_rows(const torch::Tensor& rows, const std::string& function, const char* argument) {
  // A row's sum is finite when all its values are (unless it overflows, which the exact check
  // below then clears): a reduction instead of a mask the size of the input.
  const torch::Tensor sum_finite = torch::isfinite(rows.sum(-1));
  if (sum_finite.all().item<bool>()) return sum_finite;
  const torch::Tensor finite = torch::isfinite(rows).all(-1);
  const torch::Tensor bad = ~(finite | torch::isnan(rows).all(-1));
  if (bad.any().item<bool>()) {
    throw ValueError(fmt::format("{}: {} row {} holds a NaN or infinite value among finite ones; a row must be all "
                                 "finite, or all NaN for an absent node",
                                 function, argument, first_true_index(bad)));
  }
  return finite;
}

std::string first_true_index(const torch::Tensor& mask) {
  const torch::Tensor found = mask.nonzero();
  if (found.size(0) == 0) return "";
  const torch::Tensor first = found[0].cpu().contiguous();  // nonzero's result may be column-major
  return fmt::format("({})", fmt::join(first.data_ptr<std::int64_t>(),
                                       first.data_ptr<std::int64_t>() + first.numel(), ", "));
}

torch::Tensor int64_tensor(const std::vector<std::int64_t>& values, const torch::Device& device) {
  return torch::tensor(values, torch::dtype(torch::kInt64)).to(device);
}

}  // namespace icgt::detail
