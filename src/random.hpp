#pragma once
// icgt's one random generator, specified here so that a seed means the same draws with any compiler
// and standard library (std:: distributions differ between them):
//   state:   xoshiro256** (Blackman and Vigna), its four words filled by SplitMix64 from the seed;
//   bounded: uniform integer in [0, n) by Lemire's multiply-shift on the upper 32 bits of a draw,
//            rejecting the low values that would bias it.
// tests/python/reference_random.py re-implements this in Python and checks walks against it.

#include <cstdint>

namespace icgt {

class RandomGenerator {
 public:
  explicit RandomGenerator(std::uint64_t seed);
  std::uint64_t next_u64();
  /// Uniform in [0, bound); bound must be in 1..2^32-1.
  std::uint32_t bounded(std::uint32_t bound);

 private:
  std::uint64_t state_[4];
};

}  // namespace icgt
