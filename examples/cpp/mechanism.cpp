// The induction-circuit test in C++ alone: score every attention head for previous-token attention and
// for induction (on BOS and random tokens repeated twice), then zero-ablate the k best induction heads,
// and k random heads for comparison, and see what each does to the rule-following accuracy on random
// walks over a 4x4 grid of concept words. (`icgt run --preset grid-heads` is the full experiment.)
//
//   icgt_mechanism BUNDLE [WALKS] [LENGTH] [K]
//   (BUNDLE from `icgt export smollm2-135m`; defaults: 8 walks of 400 words, k = 4)
#include <icgt/icgt.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace {

using Probe = icgt::ActivationProbe;

// [layers, heads] scores averaged over sequences, for attention at `offset` from `first_query` on.
torch::Tensor head_scores(Probe& probe, const torch::Tensor& ids, std::int64_t offset, std::int64_t first_query) {
  Probe::Request request;
  request.attention_scores = {Probe::AttentionScore{{}, offset, first_query}};
  return probe.run(ids, request).attention_scores.at(0).mean(1).cpu();  // [layers, batch, heads] -> [layers, heads]
}

// Zero-ablations of the heads at these flat indices (layer * heads + head), grouped by layer.
std::vector<Probe::HeadAblation> zero_ablations(const torch::Tensor& flat_heads, int num_heads) {
  std::map<int, std::vector<int>> by_layer;
  for (std::int64_t i = 0; i < flat_heads.numel(); ++i) {
    const auto flat = flat_heads[i].item<std::int64_t>();
    by_layer[static_cast<int>(flat / num_heads)].push_back(static_cast<int>(flat % num_heads));
  }
  std::vector<Probe::HeadAblation> ablations;
  for (auto& [layer, heads] : by_layer) ablations.push_back({layer, heads, Probe::HeadAblation::Kind::Zero, {}});
  return ablations;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s BUNDLE [WALKS] [LENGTH] [K]\n", argv[0]);
    return 2;
  }
  const std::int64_t walks = argc > 2 ? std::stoll(argv[2]) : 8;
  const std::int64_t length = argc > 3 ? std::stoll(argv[3]) : 400;
  const std::int64_t k = argc > 4 ? std::stoll(argv[4]) : 4;
  try {
    Probe probe(argv[1], "auto");
    const auto& info = probe.info();
    torch::manual_seed(0);

    // Head scores on BOS + 50 random tokens + the same 50 again (the usual TransformerLens definitions).
    const std::int64_t half = 50;
    const torch::Tensor random_tokens = torch::randint(100, info.vocab_size - 100, {4, half}, torch::kInt64);
    const torch::Tensor repeated = torch::cat(
        {torch::full({4, 1}, info.bos_token_id, torch::kInt64), random_tokens, random_tokens}, 1);
    const torch::Tensor previous_token = head_scores(probe, repeated, 1, 1);
    const torch::Tensor induction = head_scores(probe, repeated, half - 1, half + 1);

    // Walks on the grid, as in icgt_experiment.
    icgt::Graph grid = icgt::Graph::square_grid(4, 4);
    grid.set_labels({"apple", "bird", "car", "egg", "house", "milk", "plane", "opera", "box", "sand", "sun",
                     "mango", "rock", "math", "code", "phone"});
    std::vector<std::int64_t> word_ids;
    for (const auto& word : grid.labels()) word_ids.push_back(probe.token_id(" " + word));
    icgt::WalkSampler sampler(grid, /*seed=*/0);
    const torch::Tensor nodes = torch::cat(
        {torch::full({walks, 1}, icgt::kNotANode, torch::kInt64),
         sampler.random_walks(walks, length, icgt::WalkSampler::Start::PerNode)}, 1);
    const torch::Tensor words = torch::tensor(word_ids);
    torch::Tensor token_ids = words.index({nodes.clamp_min(0)});
    token_ids.select(1, 0).fill_(info.bos_token_id);

    icgt::EnergyMetrics metrics(grid);
    // Mean full-vocabulary accuracy over the last half of the context, with these heads zeroed.
    auto late_accuracy = [&](const std::vector<Probe::HeadAblation>& ablations) {
      Probe::Request request;
      request.target_ids = words;
      request.head_ablations = ablations;
      const auto result = probe.run(token_ids, request);
      const torch::Tensor curve = metrics.rule_following_accuracy(result.target_probs, nodes).mean_full_vocabulary;
      return curve.slice(0, length / 2).nanmean().item<double>();
    };
    const torch::Tensor top_induction = induction.flatten().argsort(0, /*descending=*/true).slice(0, 0, k);
    const torch::Tensor random_heads = torch::randperm(induction.numel(), torch::kInt64).slice(0, 0, k);

    const auto strongest = [&](const torch::Tensor& scores) {
      const auto flat = scores.flatten().argmax().item<std::int64_t>();
      return std::make_pair(flat / info.num_heads, flat % info.num_heads);
    };
    const auto [previous_layer, previous_head] = strongest(previous_token);
    const auto [induction_layer, induction_head] = strongest(induction);
    std::printf("%s, %d blocks x %d heads; 4x4 grid, %lld walks of %lld words\n", info.architecture.c_str(),
                info.num_layers, info.num_heads, static_cast<long long>(walks), static_cast<long long>(length));
    std::printf("strongest previous-token head: block %lld head %lld (score %.3f)\n",
                static_cast<long long>(previous_layer), static_cast<long long>(previous_head),
                previous_token.max().item<double>());
    std::printf("strongest induction head: block %lld head %lld (score %.3f)\n",
                static_cast<long long>(induction_layer), static_cast<long long>(induction_head),
                induction.max().item<double>());
    std::printf("accuracy over the last half of the context:\n");
    std::printf("  %-32s %.4f\n", "no ablation", late_accuracy({}));
    std::printf("  %-32s %.4f\n", ("top " + std::to_string(k) + " induction heads zeroed").c_str(),
                late_accuracy(zero_ablations(top_induction, info.num_heads)));
    std::printf("  %-32s %.4f\n", (std::to_string(k) + " random heads zeroed").c_str(),
                late_accuracy(zero_ablations(random_heads, info.num_heads)));
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "icgt_mechanism: %s\n", error.what());
    return 1;
  }
}
