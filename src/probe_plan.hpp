#pragma once
// What one ActivationProbe run needs, worked out once before its sub-batches: shared by the run
// (activation_probe.cpp), which makes it, and the forward pass (forward_pass.cpp), which follows it.

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <set>
#include <vector>

#include "icgt/activation_probe.hpp"

namespace icgt {

struct ActivationProbe::Plan {
  const Request& request;
  HookList hooks;  // the persistent hooks when the run started, then the run's own
  std::map<int, torch::Tensor> head_gates;  // the head gates when the run started
  torch::Tensor targets;
  std::vector<std::int64_t> logit_positions;  // counted from the start
  std::vector<HeadAblation> ablations;        // with their values
  std::set<HookSite> captured;
  std::set<int> inside;  // blocks whose steps the probe drives
  int last_block = kEmbeddingLayer;
  bool needs_head = false;
};

}  // namespace icgt
