#pragma once
// Catch2 for tests that touch LibTorch. c10/util/Logging.h defines a one-argument CHECK that aborts
// the run; including LibTorch first and dropping that macro leaves Catch's CHECK in charge, whatever
// the test includes afterwards.

#include <torch/types.h>
#undef CHECK
#include <catch2/catch.hpp>
