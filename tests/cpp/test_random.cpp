#include <catch2/catch.hpp>
#include <vector>

#include "random.hpp"

TEST_CASE("the generator is a pure function of its seed") {
  icgt::RandomGenerator a(42), b(42), c(43);
  std::vector<std::uint64_t> from_a, from_b, from_c;
  for (int i = 0; i < 100; ++i) {
    from_a.push_back(a.next_u64());
    from_b.push_back(b.next_u64());
    from_c.push_back(c.next_u64());
  }
  CHECK(from_a == from_b);
  CHECK(from_a != from_c);
}

TEST_CASE("bounded draws stay in range and are uniform") {
  icgt::RandomGenerator generator(7);
  for (std::uint32_t bound : {1u, 2u, 3u, 7u, 1000u, 4294967295u}) {
    for (int i = 0; i < 1000; ++i) CHECK(generator.bounded(bound) < bound);
  }
  // Chi-square over 6 cells, 60000 draws: 5 degrees of freedom, 20.52 is the 0.999 quantile.
  std::vector<double> counts(6, 0.0);
  for (int i = 0; i < 60000; ++i) counts[generator.bounded(6)] += 1.0;
  double chi_square = 0.0;
  for (double count : counts) chi_square += (count - 10000.0) * (count - 10000.0) / 10000.0;
  CHECK(chi_square < 20.52);
}
