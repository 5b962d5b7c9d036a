#pragma once
// Argument checks shared by RepresentationStats and EnergyMetrics, and one small tensor helper.
// Each check throws the icgt error whose message names the function, the argument, what it got
// and what was expected.

#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace icgt::detail {

/// The dtype statistics are computed and returned in: float32, or float64 for float64 input.
torch::ScalarType compute_dtype(const torch::Tensor& tensor);

/// TypeError unless a defined floating-point tensor with at least min_rank dimensions; layout
/// names the dimensions expected, e.g. "[..., nodes, d]".
void check_floating(const torch::Tensor& tensor, std::int64_t min_rank, const std::string& function,
                    const char* argument, const char* layout);

/// TypeError unless a defined integer tensor (not bool) with exactly `rank` dimensions.
void check_integer(const torch::Tensor& tensor, std::int64_t rank, const std::string& function, const char* argument,
                   const char* layout);

/// ValueError unless size(dim) is `expected`; `meaning` says what that dimension counts.
void check_size(const torch::Tensor& tensor, std::int64_t dim, std::int64_t expected, const std::string& function,
                const char* argument, const char* meaning);

/// ValueError unless every value of an int64 tensor is kNotANode or a node id in 0..num_nodes-1.
void check_node_ids(const torch::Tensor& nodes, std::int64_t num_nodes, const std::string& function,
                    const char* argument);

/// Rows along the last dimension must be all finite or all NaN (an absent node); anything else is
/// a ValueError. Returns the bool mask of the finite (present) rows, shape sizes()[:-1].
torch::Tensor present_rows(const torch::Tensor& rows, const std::string& function, const char* argument);

/// The index of the first true element of a bool tensor, written "(i, j, ...)"; "" if none.
std::string first_true_index(const torch::Tensor& mask);

/// ValueError when `bytes` exceed this machine's physical memory, before anything is allocated:
/// `what` names what would be allocated (e.g. "a 1000000 x 1000000 int64 walk array").
void check_memory(double bytes, const std::string& function, const std::string& what);

/// "[2, 3, 4]".
std::string shape_of(const torch::Tensor& tensor);

/// Text from a file or a caller, fit for a one-line message: control bytes (newlines included)
/// written as \n, \r, \t or \xHH; everything else, UTF-8 included, kept.
std::string escaped(const std::string& text);

/// The values as an int64 tensor on the device (snapshot positions, window boundaries).
torch::Tensor int64_tensor(const std::vector<std::int64_t>& values, const torch::Device& device);

}  // namespace icgt::detail
