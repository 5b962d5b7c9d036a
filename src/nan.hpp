#pragma once
// The one NaN of icgt's statistics: the value of a mean, an energy or a score without data.

#include <limits>

namespace icgt::detail {

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace icgt::detail
