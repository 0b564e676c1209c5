// Distill takes the temperature first, then alpha.
// expect-error: the first argument must be an ordo::temperature<Num, Den>
// expect-error: the second argument must be an ordo::alpha<Num, Den>
// expect-error-count: 2
#include <ordo/pipeline.hpp>

#ifdef ORDO_EXPECT_ERROR
using pipeline = ordo::Pipeline<ordo::Distill<ordo::A03, ordo::T4>>;
#else
using pipeline = ordo::Pipeline<ordo::Distill<ordo::T4, ordo::A03>>;
#endif
static_assert(pipeline::size > 0);
