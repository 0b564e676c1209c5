// Prune<100> would remove every FFN neuron.
// expect-error: ordo::Prune<Percent>: Percent is the share of FFN neurons removed and must satisfy 0 < Percent < 100
// expect-error: ordo::Prune<100>
// expect-error-count: 1
#include <ordo/pipeline.hpp>

#ifdef ORDO_EXPECT_ERROR
using pipeline = ordo::Pipeline<ordo::Prune<100>>;
#else
using pipeline = ordo::Pipeline<ordo::Prune<99>>;
#endif
static_assert(pipeline::size > 0);
