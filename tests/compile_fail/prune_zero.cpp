// Prune<0> removes nothing: the percentage must satisfy 0 < Percent < 100.
// expect-error: ordo::Prune<Percent>: Percent is the share of FFN neurons removed and must satisfy 0 < Percent < 100
// expect-error: ordo::Prune<0>
// expect-error-count: 1
#include <ordo/pipeline.hpp>

#ifdef ORDO_EXPECT_ERROR
using pipeline = ordo::Pipeline<ordo::Prune<0>, ordo::QuantNF4>;
#else
using pipeline = ordo::Pipeline<ordo::Prune<1>, ordo::QuantNF4>;
#endif
static_assert(pipeline::size > 0);
