// Include this first in a doctest test that uses LibTorch: LibTorch's logging header defines
// CHECK, CHECK_EQ, ... as fatal asserts, which would silently replace doctest's macros.
#pragma once

#include <torch/torch.h>

#undef CHECK
#undef CHECK_EQ
#undef CHECK_NE
#undef CHECK_LT
#undef CHECK_LE
#undef CHECK_GT
#undef CHECK_GE
#undef CHECK_NOTNULL

#include <doctest/doctest.h>
