#pragma once
// icgt's one random generator, specified here so that a seed means the same draws with any compiler
// and standard library (std:: distributions differ between them):
//   state:   xoshiro256** (Blackman and Vigna), its four words filled by SplitMix64 from the seed;
//   bounded: uniform integer in [0, n) by Lemire's multiply-shift on the upper 32 bits of a draw,
//            rejecting the low values that would bias it.
// tests/python/reference_random.py re-implements this in Python and checks walks against it.
// Inline, since the walk sampler draws once per step.

#include <cstdint>

namespace icgt {

class RandomGenerator {
 public:
  explicit RandomGenerator(std::uint64_t seed) {
    for (auto& word : state_) word = splitmix64(seed);
  }

  std::uint64_t next_u64() {
    const std::uint64_t result = rotate_left(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotate_left(state_[3], 45);
    return result;
  }

  /// Uniform in [0, bound); bound must be in 1..2^32-1.
  std::uint32_t bounded(std::uint32_t bound) {
    std::uint64_t product = (next_u64() >> 32) * bound;
    auto low = static_cast<std::uint32_t>(product);
    if (low < bound) {
      const std::uint32_t threshold = static_cast<std::uint32_t>(-bound) % bound;
      while (low < threshold) {
        product = (next_u64() >> 32) * bound;
        low = static_cast<std::uint32_t>(product);
      }
    }
    return static_cast<std::uint32_t>(product >> 32);
  }

 private:
  static std::uint64_t rotate_left(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  static std::uint64_t splitmix64(std::uint64_t& state) {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  std::uint64_t state_[4];
};

}  // namespace icgt
