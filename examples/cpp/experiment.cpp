// The in-context graph tracing experiment in C++ alone: a 4x4 grid of concept words, one random walk
// per node fed to an exported model, then the paper's normalised Dirichlet energy of the class means
// (window 20) for a shallow, a middle and a deep layer, and the rule-following accuracy, against
// context length.
//
//   icgt_experiment BUNDLE [WALKS] [LENGTH]
//   (BUNDLE from `icgt export smollm2-135m`; defaults: 16 walks of 1400 words)
#include <icgt/icgt.hpp>

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s BUNDLE [WALKS] [LENGTH]\n", argv[0]);
    return 2;
  }
  const std::int64_t walks = argc > 2 ? std::stoll(argv[2]) : 16;
  const std::int64_t length = argc > 3 ? std::stoll(argv[3]) : 1400;
  try {
    icgt::ActivationProbe probe(argv[1], "auto");
    icgt::Graph grid = icgt::Graph::square_grid(4, 4);
    grid.set_labels({"apple", "bird", "car", "egg", "house", "milk", "plane", "opera", "box", "sand", "sun",
                     "mango", "rock", "math", "code", "phone"});
    std::vector<std::int64_t> word_ids;
    for (const auto& word : grid.labels()) word_ids.push_back(probe.token_id(" " + word));

    // Node sequence with the BOS in front (no node there), and the token ids the model reads.
    icgt::WalkSampler sampler(grid, /*seed=*/0);
    const torch::Tensor nodes = torch::cat(
        {torch::full({walks, 1}, icgt::kNotANode, torch::kInt64),
         sampler.random_walks(walks, length, icgt::WalkSampler::Start::PerNode)}, 1);
    const torch::Tensor words = torch::tensor(word_ids);
    torch::Tensor token_ids = words.index({nodes.clamp_min(0)});
    token_ids.select(1, 0).fill_(probe.info().bos_token_id);

    const int layers = probe.info().num_layers;
    icgt::ActivationProbe::Request request;
    request.layers = {layers / 6, layers / 2, (5 * layers) / 6};
    request.target_ids = words;
    const auto result = probe.run(token_ids, request);

    icgt::EnergyMetrics metrics(grid);
    const auto positions = icgt::RepresentationStats::strided_positions(length + 1, 10, 10);
    // The energy of the class means over the trailing 20 positions, straight from the residuals.
    const torch::Tensor energy =
        metrics.energy_over_context(result.residuals, nodes, /*window=*/20, positions).energy.cpu();  // [3, snapshots]
    const auto accuracy = metrics.rule_following_accuracy(result.target_probs, nodes);
    const torch::Tensor mean_accuracy = accuracy.mean_full_vocabulary.cpu();

    std::printf("%s, %d layers; 4x4 grid, %lld walks of %lld words\n", probe.info().architecture.c_str(), layers,
                static_cast<long long>(walks), static_cast<long long>(length));
    std::printf("%8s %14s %14s %14s %10s\n", "position", "energy L" , "energy L", "energy L", "accuracy");
    std::printf("%8s %14d %14d %14d %10s\n", "", request.layers[0], request.layers[1], request.layers[2], "");
    for (std::size_t s = 0; s < positions.size(); s += positions.size() / 14 + 1) {
      std::printf("%8lld %14.6f %14.6f %14.6f %10.3f\n", static_cast<long long>(positions[s]),
                  energy[0][s].item<double>(), energy[1][s].item<double>(), energy[2][s].item<double>(),
                  mean_accuracy[positions[s]].item<double>());
    }
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "icgt_experiment: %s\n", error.what());
    return 1;
  }
}
