#include "catch_torch.hpp"
#include <torch/autograd.h>
#include <torch/cuda.h>
#include <torch/script.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "icgt/activation_probe.hpp"
#include "icgt/errors.hpp"

using icgt::ActivationProbe;
using Catch::Matchers::Contains;

namespace {

// Written by tests/python/toy_bundle.py (the ctest fixture make_toy_bundles).
std::string bundle(const std::string& name) {
  const char* folder = std::getenv("ICGT_TEST_BUNDLES");
  REQUIRE(folder != nullptr);
  return (std::filesystem::path(folder) / name).string();
}

const torch::Tensor kIds = torch::tensor({{0, 5, 6, 7, 5, 6, 8, 9}, {0, 1, 2, 3, 4, 45, 44, 46}});

// The same model run directly through TorchScript, block by block, as an independent reference.
struct Reference {
  torch::jit::Module module = torch::jit::load(bundle("toy.pt"));
  torch::Tensor block(int layer, const torch::Tensor& hidden, torch::jit::IValue gate = {}) {
    return module.attr("blocks").toModule().attr(std::to_string(layer)).toModule().forward({hidden, gate}).toTensor();
  }
  torch::Tensor embed(const torch::Tensor& ids) { return module.attr("embed").toModule().forward({ids}).toTensor(); }
  torch::Tensor probs_from_hidden(const torch::Tensor& hidden) {
    auto norm = module.attr("final_norm").toModule().forward({hidden}).toTensor();
    return module.attr("head").toModule().forward({norm}).toTensor().softmax(-1);
  }
};

}  // namespace

TEST_CASE("the probe reads the bundle's description and vocabulary") {
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  CHECK(probe.info().architecture == "llama");
  CHECK(probe.info().num_layers == 3);
  CHECK(probe.info().hidden_size == 16);
  CHECK(probe.info().vocab_size == 50);
  CHECK(probe.info().num_heads == 4);
  CHECK(probe.info().dtype == torch::kFloat32);
  CHECK_THAT(probe.info().config_json, Contains("\"architecture\": \"llama\""));
  CHECK(probe.device().is_cpu());
  CHECK(probe.token_id(" w3") == 3);
  CHECK(probe.token_id("\xc3\xa9") == 44);
  CHECK(probe.token_id("\n") == 45);
  CHECK(probe.token_text(48) == "\\");
  CHECK(probe.token_text(49).empty());
  CHECK_THROWS_WITH(probe.token_id(" twin"), Contains("several tokens have the text ' twin'"));
  CHECK_THROWS_WITH(probe.token_id(" apple"), Contains("no single token"));
  CHECK_THROWS_WITH(probe.token_text(50), Contains("outside the vocabulary 0..49"));
  // Texts are quoted on one line: control bytes escaped, UTF-8 kept.
  CHECK_THROWS_WITH(probe.token_id("\r\n\xc3\xa9\x01"), Contains("is '\\r\\n\xc3\xa9\\x01'; the tokenizer"));
}

TEST_CASE("the unembedding's rows are the head's weight, and give the logits") {
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  Reference reference;
  const torch::Tensor weight = reference.module.attr("head").toModule().attr("weight").toTensor();
  const torch::Tensor rows = probe.unembedding(torch::tensor({7, 0, 3}, torch::kInt32));
  CHECK(rows.sizes() == torch::IntArrayRef({3, 16}));
  CHECK(rows.scalar_type() == torch::kFloat32);
  CHECK(torch::equal(rows, weight.index_select(0, torch::tensor({7, 0, 3}))));
  const torch::Tensor hidden = torch::randn({2, 16});
  const torch::Tensor norm = reference.module.attr("final_norm").toModule().forward({hidden}).toTensor();
  const torch::Tensor all = probe.unembedding(torch::arange(probe.info().vocab_size));
  CHECK(torch::allclose(norm.matmul(all.t()), reference.module.attr("head").toModule().forward({norm}).toTensor(),
                        1e-5, 1e-6));
  CHECK(probe.unembedding(torch::empty({0}, torch::kLong)).sizes() == torch::IntArrayRef({0, 16}));
  CHECK_THROWS_AS(probe.unembedding(torch::tensor({{1, 2}})), icgt::TypeError);
  CHECK_THROWS_AS(probe.unembedding(torch::tensor({1.0, 2.0})), icgt::TypeError);
  CHECK_THROWS_WITH(probe.unembedding(torch::tensor({3, 50})), Contains("token ids 3..50 reach outside the vocabulary 0..49"));
  CHECK_THROWS_AS(probe.unembedding(torch::tensor({-1})), icgt::ValueError);
}

TEST_CASE("captured residuals and probabilities equal the model run directly") {
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  ActivationProbe::Request request;
  request.layers = {2, icgt::kEmbeddingLayer, 0};
  request.target_ids = torch::tensor({5, 6, 7});
  const auto result = probe.run(kIds, request);
  REQUIRE(result.residuals.sizes() == torch::IntArrayRef{3, 2, 8, 16});
  REQUIRE(result.target_probs.sizes() == torch::IntArrayRef{2, 8, 3});

  torch::NoGradGuard no_grad;
  Reference reference;
  const auto embedded = reference.embed(kIds);
  const auto h0 = reference.block(0, embedded);
  const auto h2 = reference.block(2, reference.block(1, h0));
  CHECK(torch::equal(result.residuals[1], embedded));
  CHECK(torch::equal(result.residuals[2], h0));
  CHECK(torch::equal(result.residuals[0], h2));
  // The model's own forward, a separate code path, gives the logits.
  const auto logits = reference.module.forward({kIds}).toTensor();
  const auto expected = logits.softmax(-1).index_select(-1, torch::tensor({5, 6, 7}));
  CHECK(torch::allclose(result.target_probs, expected, 1e-5, 1e-7));

  request.normalization = ActivationProbe::Normalization::OverTargets;
  const auto renormalized = probe.run(kIds, request).target_probs;
  CHECK(torch::allclose(renormalized, expected / expected.sum(-1, true), 1e-5, 1e-7));
}

TEST_CASE("splitting the batch changes nothing") {
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  ActivationProbe::Request request;
  request.layers = {1};
  request.target_ids = torch::tensor({1, 2});
  const auto whole = probe.run(kIds, request);
  request.max_batch = 1;
  const auto split = probe.run(kIds, request);
  CHECK(torch::equal(whole.residuals, split.residuals));
  CHECK(torch::equal(whole.target_probs, split.target_probs));
}

TEST_CASE("on a CPU the automatic batch runs about 2048 tokens per pass, with the same results") {
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  ActivationProbe::Request request;
  request.layers = {1};
  int passes = 0;
  request.after_block = [&](int layer) { passes += layer == icgt::kEmbeddingLayer ? 1 : 0; };
  const auto ids = torch::randint(0, 16, {40, 64}, torch::kLong);
  const auto automatic = probe.run(ids, request);
  CHECK(passes == 2);  // 32 walks of 64 tokens, then 8
  CHECK(probe.automatic_batch(40, 64) == 32);
  CHECK(probe.automatic_batch(4, 1401) == 1);
  CHECK(probe.automatic_batch(3, 8) == 3);
  CHECK_THROWS_WITH(probe.automatic_batch(0, 64), Contains("batch and length must be at least 1; got 0 and 64"));
  passes = 0;
  request.max_batch = 40;
  const auto whole = probe.run(ids, request);
  CHECK(passes == 1);
  CHECK(torch::allclose(automatic.residuals, whole.residuals, 1e-5, 1e-6));
}

TEST_CASE("a hook that replaces the residual changes what follows exactly like the same change by hand") {
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  std::vector<int> seen_layers;
  probe.add_hook(0, [&](int layer, torch::Tensor& residual) {
    seen_layers.push_back(layer);
    residual = residual + 0.5;
  });
  const int reader = probe.add_hook(0, [&](int layer, torch::Tensor& residual) {
    seen_layers.push_back(layer);
    CHECK(residual.sizes() == torch::IntArrayRef{2, 8, 16});
  });
  ActivationProbe::Request request;
  request.layers = {0, 2};
  request.target_ids = torch::tensor({5});
  const auto result = probe.run(kIds, request);
  CHECK(seen_layers == std::vector<int>{0, 0});

  torch::NoGradGuard no_grad;
  Reference reference;
  const auto changed = reference.block(0, reference.embed(kIds)) + 0.5;
  const auto h2 = reference.block(2, reference.block(1, changed));
  CHECK(torch::equal(result.residuals[0], changed));
  CHECK(torch::equal(result.residuals[1], h2));
  CHECK(torch::allclose(result.target_probs, reference.probs_from_hidden(h2).index_select(-1, torch::tensor({5}))));

  probe.remove_hook(reader);
  CHECK_THROWS_WITH(probe.remove_hook(reader), Contains("no hook has handle"));
  probe.clear_hooks();
  const auto plain = probe.run(kIds, request);
  CHECK_FALSE(torch::equal(plain.residuals[0], changed));
}

TEST_CASE("head gates scale attention heads inside the block") {
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  const auto gates = torch::tensor({1.0, 0.0, 0.5, 1.0});
  probe.set_head_gates(1, gates);
  ActivationProbe::Request request;
  request.layers = {1};
  const auto gated = probe.run(kIds, request).residuals[0];

  torch::NoGradGuard no_grad;
  Reference reference;
  const auto h0 = reference.block(0, reference.embed(kIds));
  CHECK(torch::equal(gated, reference.block(1, h0, gates.to(torch::kFloat32))));
  probe.clear_head_gates();
  CHECK(torch::equal(probe.run(kIds, request).residuals[0], reference.block(1, h0)));
}

TEST_CASE("a bad bundle is a clear error and leaves no probe") {
  CHECK_THROWS_AS(ActivationProbe(bundle("missing.pt"), "cpu"), icgt::FileNotFoundError);
  CHECK_THROWS_WITH(ActivationProbe(bundle("garbage.pt"), "cpu"), Contains("could not be read as a TorchScript bundle"));
  CHECK_THROWS_WITH(ActivationProbe(bundle("truncated.pt"), "cpu"), Contains("could not be read"));
  CHECK_THROWS_WITH(ActivationProbe(bundle("not-icgt.pt"), "cpu"), Contains("not an icgt bundle"));
  CHECK_THROWS_WITH(ActivationProbe(bundle("version99.pt"), "cpu"), Contains("format version 99"));
  CHECK_THROWS_WITH(ActivationProbe(bundle("damaged.pt"), "cpu"), Contains("does not match the checksum recorded"));
  // LibTorch loads a tensor whose zip record has size 0 with no data: refused before it is read.
  CHECK_THROWS_WITH(ActivationProbe(bundle("empty-record.pt"), "cpu"),
                    Contains("has 0 bytes of data where it needs 4096 (its record in the archive is missing"));
  CHECK_THROWS_WITH(ActivationProbe(bundle(""), "cpu"), Contains("is a folder; expected a bundle file"));
  CHECK_THROWS_WITH(ActivationProbe("/dev/null", "cpu"), Contains("is not a regular file"));
  CHECK_THROWS_WITH(ActivationProbe(bundle("toy.pt"), "tpu"), Contains("device 'tpu' is not understood"));
  if (!torch::cuda::is_available()) {
    CHECK_THROWS_AS(ActivationProbe(bundle("toy.pt"), "cuda"), icgt::RuntimeError);
    CHECK(ActivationProbe(bundle("toy.pt"), "auto").device().is_cpu());
  }
}

TEST_CASE("bad runs are clear errors") {
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  ActivationProbe::Request request;
  CHECK_THROWS_AS(probe.run(torch::zeros({4}, torch::kLong), request), icgt::TypeError);
  CHECK_THROWS_AS(probe.run(torch::zeros({1, 4}), request), icgt::TypeError);
  CHECK_THROWS_WITH(probe.run(torch::zeros({0, 4}, torch::kLong), request), Contains("empty"));
  CHECK_THROWS_WITH(probe.run(torch::tensor({{1, 50}}), request), Contains("token id 50; the vocabulary is 0..49"));
  CHECK_THROWS_WITH(probe.run(torch::tensor({{-3, 1}}), request), Contains("token id -3"));
  request.layers = {3};
  CHECK_THROWS_WITH(probe.run(kIds, request), Contains("layer 3 is out of range; expected -1 (embeddings) to 2"));
  request.layers = {1, 1};
  CHECK_THROWS_WITH(probe.run(kIds, request), Contains("layer 1 is requested twice"));
  request.layers = {};
  request.target_ids = torch::tensor({60});
  CHECK_THROWS_WITH(probe.run(kIds, request), Contains("target_ids holds token id 60"));
  request.target_ids = torch::tensor({1});
  request.max_batch = -1;
  CHECK_THROWS_WITH(probe.run(kIds, request), Contains("max_batch must be 0"));
  CHECK_THROWS_WITH(probe.add_hook(-2, [](int, torch::Tensor&) {}), Contains("layer -2 is out of range"));
  CHECK_THROWS_WITH(probe.set_head_gates(0, torch::ones({3})), Contains("expected 4 gates"));
  CHECK_THROWS_WITH(probe.set_head_gates(-1, torch::ones({4})), Contains("no attention heads"));
  CHECK_THROWS_AS(probe.set_head_gates(0, torch::ones({4}, torch::kLong)), icgt::TypeError);
  CHECK_THROWS_WITH(probe.set_head_gates(0, torch::tensor({1.0, std::nan(""), 1.0, 1.0})), Contains("gate 1 (head 1) is nan"));
  CHECK_THROWS_WITH(probe.set_head_gates(0, torch::tensor({1.0, 1.0, -1.0, 1.0})), Contains("expected a finite factor"));
  CHECK_THROWS_WITH(probe.run(torch::zeros({1, 65}, torch::kLong), request),
                    Contains("65 positions, more than the 64 this llama model was trained for"));
  probe.add_hook(1, [](int, torch::Tensor& residual) { residual = residual.narrow(1, 0, 2); });
  request.max_batch = 0;
  CHECK_THROWS_WITH(probe.run(kIds, request), Contains("hook 0 at blocks.1.hook_resid_post left a tensor that is not"));
}

TEST_CASE("hooks that change the hooks while a run goes on take effect from the next run") {
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  ActivationProbe::Request request;
  request.layers = {2};
  std::vector<std::string> seen;
  const auto note = [&](std::string name) { return [&seen, name](int, torch::Tensor&) { seen.push_back(name); }; };
  probe.add_hook(1, [&](int, torch::Tensor&) {
    seen.push_back("clear");
    probe.clear_hooks();
  });
  probe.add_hook(1, note("second"));
  probe.run(kIds, request);
  probe.run(kIds, request);
  CHECK(seen == std::vector<std::string>{"clear", "second"});

  seen.clear();
  int self = -1;
  self = probe.add_hook(0, [&](int, torch::Tensor&) {
    seen.push_back("once");
    probe.remove_hook(self);
  });
  probe.add_hook(0, [&](int, torch::Tensor&) {
    seen.push_back("adds");
    probe.add_hook(0, note("added"));
  });
  probe.run(kIds, request);
  CHECK(seen == std::vector<std::string>{"once", "adds"});
  probe.run(kIds, request);
  CHECK(seen == std::vector<std::string>{"once", "adds", "adds", "added"});
}

TEST_CASE("head gates set or cleared while a run goes on take effect from the next run, as hooks do") {
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  ActivationProbe::Request request;
  request.layers = {2};
  const auto gates = torch::tensor({1.0, 0.0, 0.5, 1.0});
  const auto plain = probe.run(kIds, request).residuals;
  probe.set_head_gates(1, gates);
  const auto gated = probe.run(kIds, request).residuals;
  REQUIRE_FALSE(torch::equal(plain, gated));
  probe.clear_head_gates();

  // A hook after block 0 gates block 1: this run is as without the gate, the next as with it.
  const int setter = probe.add_hook(0, [&](int, torch::Tensor&) { probe.set_head_gates(1, gates); });
  CHECK(torch::equal(probe.run(kIds, request).residuals, plain));
  probe.remove_hook(setter);
  CHECK(torch::equal(probe.run(kIds, request).residuals, gated));

  // Clearing them likewise, also where the probe drives block 1's steps and in passes of one sequence.
  const int clearer = probe.add_hook(0, [&](int, torch::Tensor&) { probe.clear_head_gates(); });
  request.captures = {icgt::HookSite::parse("blocks.1.attn.hook_z")};
  request.max_batch = 1;
  CHECK(torch::equal(probe.run(kIds, request).residuals, gated));
  probe.remove_hook(clearer);
  CHECK(torch::equal(probe.run(kIds, request).residuals, plain));

  // The probe keeps its own copy: the caller's tensor changed afterwards changes nothing.
  auto mine = gates.clone();
  probe.set_head_gates(1, mine);
  mine.fill_(1.0);
  CHECK(torch::equal(probe.run(kIds, request).residuals, gated));
}

TEST_CASE("after_block hears of every block and can stop the run") {
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  ActivationProbe::Request request;
  request.target_ids = torch::tensor({1});
  std::vector<int> layers;
  request.after_block = [&](int layer) { layers.push_back(layer); };
  probe.run(kIds, request);
  CHECK(layers == std::vector<int>{-1, 0, 1, 2});
  request.after_block = [](int layer) {
    if (layer == 0) throw std::runtime_error("stop");
  };
  CHECK_THROWS_WITH(probe.run(kIds, request), Contains("stop"));
}

TEST_CASE("hook points have TransformerLens names") {
  using icgt::HookPoint;
  using icgt::HookSite;
  CHECK(HookSite::parse("blocks.3.attn.hook_z") == HookSite{3, HookPoint::Z});
  CHECK(HookSite::parse("blocks.0.hook_resid_pre") == HookSite{0, HookPoint::ResidPre});
  CHECK(HookSite::parse("hook_embed") == HookSite{icgt::kEmbeddingLayer, HookPoint::ResidPost});
  CHECK(HookSite::at(2, "pattern") == HookSite{2, HookPoint::Pattern});
  CHECK(HookSite::at(2, "attn.hook_pattern") == HookSite::at(2, "hook_pattern"));
  CHECK(HookSite::at(1, "mlp_out").name() == "blocks.1.hook_mlp_out");
  CHECK(HookSite::at(4, "z").name() == "blocks.4.attn.hook_z");
  CHECK_THROWS_WITH(HookSite::parse("blocks.1.attn.hook_q"), Contains("is not a hook point icgt has"));
  CHECK_THROWS_WITH(HookSite::at(1, "ln1"), Contains("expected resid_pre, pattern"));
}

TEST_CASE("every point inside a block: driven step by step, the block computes what the fused call does") {
  using icgt::HookPoint;
  using icgt::HookSite;
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  ActivationProbe::Request plain;
  plain.layers = {0, 1, 2};
  plain.target_ids = torch::tensor({5, 6});
  ActivationProbe::Request inside = plain;
  for (const char* point : {"resid_pre", "pattern", "z", "attn_out", "resid_mid", "mlp_out", "resid_post"}) {
    inside.captures.push_back(HookSite::at(1, point));
  }
  const auto fused = probe.run(kIds, plain);
  const auto steps = probe.run(kIds, inside);
  CHECK(torch::equal(fused.residuals, steps.residuals));
  CHECK(torch::equal(fused.target_probs, steps.target_probs));
  const auto at = [&](const char* point) { return steps.activations.at(HookSite::at(1, point)); };
  CHECK(at("z").sizes() == torch::IntArrayRef{2, 8, 4, 4});
  CHECK(at("pattern").sizes() == torch::IntArrayRef{2, 4, 8, 8});
  CHECK(torch::equal(at("resid_pre"), fused.residuals[0]));
  CHECK(torch::equal(at("resid_post"), fused.residuals[1]));
  CHECK(torch::equal(at("resid_mid"), at("resid_pre") + at("attn_out")));
  CHECK(torch::equal(at("resid_post"), at("resid_mid") + at("mlp_out")));
  // Attention weights: rows sum to one, nothing above the diagonal.
  CHECK(torch::allclose(at("pattern").sum(-1), torch::ones({2, 4, 8}), 1e-6, 1e-6));
  CHECK(torch::equal(at("pattern").triu(1), torch::zeros({2, 4, 8, 8})));
  // attn_out is the output projection of z, computed by the model itself.
  Reference reference;
  auto block = reference.module.attr("blocks").toModule().attr("1").toModule();
  CHECK(torch::allclose(block.run_method("attention_output", at("z")).toTensor(), at("attn_out")));
}

TEST_CASE("hooks at any point: a changed pattern is what attention mixes, a changed z is what it projects") {
  using icgt::HookSite;
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  ActivationProbe::Request request;
  request.captures = {HookSite::at(2, "z"), HookSite::at(2, "resid_pre")};
  request.hooks = {{HookSite::at(2, "z"), [](int, torch::Tensor& z) { z.select(2, 1).zero_(); }}};
  const auto edited = probe.run(kIds, request);
  CHECK(torch::equal(edited.activations.at(HookSite::at(2, "z")).select(2, 1), torch::zeros({2, 8, 4})));
  ActivationProbe::Request ablated;
  ablated.captures = request.captures;
  ablated.head_ablations = {{2, {1}, ActivationProbe::HeadAblation::Kind::Zero, {}}};
  CHECK(torch::equal(probe.run(kIds, ablated).activations.at(HookSite::at(2, "z")),
                     edited.activations.at(HookSite::at(2, "z"))));

  // Every query attends to the first token only: z is the first position's values.
  ActivationProbe::Request first_token;
  first_token.captures = {HookSite::at(1, "z"), HookSite::at(1, "resid_pre")};
  first_token.hooks = {{HookSite::at(1, "pattern"), [](int, torch::Tensor& pattern) {
                          pattern.zero_();
                          pattern.select(3, 0).fill_(1.0);
                        }}};
  const auto result = probe.run(kIds, first_token);
  const torch::Tensor z = result.activations.at(HookSite::at(1, "z"));
  CHECK(torch::allclose(z, z.narrow(1, 0, 1).expand_as(z)));
}

TEST_CASE("run hooks go when the run ends, scoped hooks when the guard goes, also on an exception") {
  using icgt::HookSite;
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  int calls = 0;
  ActivationProbe::Request request;
  request.hooks = {{HookSite::at(0, "mlp_out"), [&](int, torch::Tensor&) { ++calls; }}};
  probe.run(kIds, request);
  probe.run(kIds, ActivationProbe::Request{});
  CHECK(calls == 1);
  try {
    ActivationProbe::ScopedHooks guard(probe, {{HookSite::at(1, "z"), [&](int, torch::Tensor&) {
                                                  ++calls;
                                                  throw std::runtime_error("inside a hook");
                                                }}});
    ActivationProbe::Request capture;
    capture.layers = {2};
    probe.run(kIds, capture);
  } catch (const std::runtime_error& error) {
    CHECK(std::string(error.what()) == "inside a hook");
  }
  CHECK(calls == 2);
  ActivationProbe::Request capture;
  capture.layers = {2};
  probe.run(kIds, capture);
  CHECK(calls == 2);
}

TEST_CASE("patch ablations take the heads' outputs from another input") {
  using icgt::HookSite;
  using Kind = ActivationProbe::HeadAblation::Kind;
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  const torch::Tensor other = kIds.flip(0);
  ActivationProbe::Request capture;
  capture.captures = {HookSite::at(1, "z")};
  const torch::Tensor other_z = probe.run(other, capture).activations.at(HookSite::at(1, "z"));
  const torch::Tensor clean_z = probe.run(kIds, capture).activations.at(HookSite::at(1, "z"));
  ActivationProbe::Request patch = capture;
  patch.head_ablations = {{1, {0, 3}, Kind::Patch, {}}};
  patch.patch_source = other;
  const torch::Tensor z = probe.run(kIds, patch).activations.at(HookSite::at(1, "z"));
  const torch::Tensor patched = torch::tensor({0, 3}), kept = torch::tensor({1, 2});
  CHECK(torch::equal(z.index_select(2, patched), other_z.index_select(2, patched)));
  CHECK(torch::equal(z.index_select(2, kept), clean_z.index_select(2, kept)));
}

TEST_CASE("attention scores and predictions from the run equal them computed from its outputs") {
  using icgt::HookSite;
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  ActivationProbe::Request request;
  request.captures = {HookSite::at(0, "pattern")};
  request.attention_scores = {{{0}, 1, 2}};
  request.logit_positions = {-1};
  request.top_k = 3;
  const auto result = probe.run(kIds, request);
  const torch::Tensor pattern = result.activations.at(HookSite::at(0, "pattern"));
  const torch::Tensor queries = torch::arange(2, 8);
  const torch::Tensor previous =
      pattern.index_select(2, queries).gather(3, (queries - 1).view({1, 1, -1, 1}).expand({2, 4, 6, 1})).mean({2, 3});
  CHECK(torch::allclose(result.attention_scores[0][0], previous));
  Reference reference;
  ActivationProbe::Request last;
  last.layers = {2};
  const torch::Tensor hidden = probe.run(kIds, last).residuals[0];
  const torch::Tensor logits =
      reference.module.attr("head").toModule().forward({reference.module.attr("final_norm").toModule().forward({hidden}).toTensor()}).toTensor();
  CHECK(torch::allclose(result.logits.select(1, 0), logits.select(1, 7), 1e-5, 1e-6));
  CHECK(torch::equal(result.top_k_ids, std::get<1>(logits.topk(3, -1))));
}

TEST_CASE("a run resumed from a captured residual computes what the whole run computes") {
  using icgt::HookSite;
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  ActivationProbe::Request whole;
  whole.layers = {0, 2};
  whole.logit_positions = {-1};
  whole.captures = {HookSite::at(1, "z")};
  const auto reference = probe.run(kIds, whole);
  ActivationProbe::Request resumed;
  resumed.layers = {2};
  resumed.logit_positions = {-1};
  resumed.captures = {HookSite::at(1, "z")};
  resumed.start_residual = reference.residuals[0];
  resumed.start_layer = 1;
  const auto result = probe.run(kIds, resumed);
  CHECK(torch::equal(result.residuals[0], reference.residuals[1]));
  CHECK(torch::equal(result.logits, reference.logits));
  CHECK(torch::equal(result.activations.at(HookSite::at(1, "z")), reference.activations.at(HookSite::at(1, "z"))));
  resumed.layers = {0};
  CHECK_THROWS_WITH(probe.run(kIds, resumed), Contains("layer 0 comes before start_layer 1"));
  resumed.layers = {};
  resumed.start_residual = torch::zeros({2, 8, 5});
  CHECK_THROWS_WITH(probe.run(kIds, resumed), Contains("start_residual has shape [2, 8, 5]"));
  ActivationProbe::Request orphan;
  orphan.start_layer = 2;
  CHECK_THROWS_WITH(probe.run(kIds, orphan), Contains("start_layer is given without start_residual"));
}

TEST_CASE("a run with grad differentiates from a hooked residual to the probabilities as autograd does directly") {
  ActivationProbe probe(bundle("toy.pt"), "cpu");
  torch::Tensor leaf;
  probe.add_hook(0, [&](int, torch::Tensor& residual) { residual = leaf = residual.detach().requires_grad_(); });
  ActivationProbe::Request request;
  request.layers = {2, 0};
  request.target_ids = torch::tensor({5});
  request.grad = true;
  const auto result = probe.run(kIds, request);
  CHECK(result.layers == std::vector<int>{2, 0});
  CHECK_FALSE(result.residuals.is_inference());
  const auto ours = torch::autograd::grad({result.target_probs.sum()}, {leaf})[0];

  Reference reference;
  const auto start = leaf.detach().requires_grad_();
  const auto probs = reference.probs_from_hidden(reference.block(2, reference.block(1, start)));
  const auto theirs = torch::autograd::grad({probs.select(-1, 5).sum()}, {start})[0];
  const double size = ours.abs().sum().item<double>();
  CHECK(size > 0);
  CHECK(torch::allclose(ours, theirs, 1e-5, 1e-7));

  request.grad = false;  // the default: inference mode, whose tensors autograd cannot save
  CHECK(probe.run(kIds, request).residuals.is_inference());
}
