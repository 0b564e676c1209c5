// A softmax temperature must be positive.
// expect-error: ordo::temperature<Num, Den>: the temperature must be positive (Num > 0)
// expect-error: ordo::temperature<0>
// expect-error-count: 1
#include <ordo/pipeline.hpp>

#ifdef ORDO_EXPECT_ERROR
using pipeline = ordo::Pipeline<ordo::Distill<ordo::temperature<0>, ordo::A03>>;
#else
using pipeline = ordo::Pipeline<ordo::Distill<ordo::temperature<1, 2>, ordo::A03>>;
#endif
static_assert(pipeline::size > 0);
