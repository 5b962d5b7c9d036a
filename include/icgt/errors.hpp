#pragma once
// The exceptions icgt throws. Each message says what was wrong and what was expected.
// The Python bindings translate them to the Python exception of the same name.

#include <stdexcept>

#include "icgt/export.hpp"

namespace icgt {

/// An argument has a bad value (size, index, label, window...). Python: ValueError.
struct ICGT_API ValueError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// An argument has the wrong kind (tensor dtype or rank). Python: TypeError.
struct ICGT_API TypeError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// A file that should exist does not. Python: FileNotFoundError.
struct ICGT_API FileNotFoundError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A failure at run time that no argument check could foresee: a malformed model bundle, a device
/// that is not there. Python: RuntimeError.
struct ICGT_API RuntimeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace icgt
