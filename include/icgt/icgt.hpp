#pragma once
// Everything icgt offers to C++: `#include <icgt/icgt.hpp>` and link icgt::icgt.

#include "icgt/activation_probe.hpp"
#include "icgt/errors.hpp"
#include "icgt/graph.hpp"
#include "icgt/walk_sampler.hpp"
#include "icgt/representation_stats.hpp"
#include "icgt/energy_metrics.hpp"
