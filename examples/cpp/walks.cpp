// Builds the paper's 4x4 grid of concept words, samples one walk per node and prints the start of
// each as text, with the Laplacian eigenvalues that the energy-minimisation theory predicts.
#include <icgt/icgt.hpp>
#include <iostream>

int main() {
  icgt::Graph grid = icgt::Graph::square_grid(4, 4);
  grid.set_labels({"apple", "bird", "car", "egg", "house", "milk", "plane", "opera", "box", "sand", "sun",
                   "mango", "rock", "math", "code", "phone"});
  icgt::WalkSampler sampler(grid, /*seed=*/0);
  const torch::Tensor walks = sampler.random_walks(16, 1400, icgt::WalkSampler::Start::PerNode);

  for (int b = 0; b < 3; ++b) {
    std::cout << "walk " << b << ":";
    for (int t = 0; t < 8; ++t) std::cout << ' ' << grid.labels()[walks[b][t].item<std::int64_t>()];
    std::cout << " ...\n";
  }
  const auto embedding = grid.spectral_embedding(2);
  std::cout << "smallest non-zero Laplacian eigenvalues: " << embedding.eigenvalues.transpose() << '\n';
  return 0;
}
