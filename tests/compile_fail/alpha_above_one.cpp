// alpha weighs the KL term against cross-entropy: it must lie within [0, 1].
// expect-error: ordo::alpha<Num, Den>: alpha = Num/Den must lie within [0, 1]
// expect-error: ordo::alpha<11, 10>
// expect-error-count: 1
#include <ordo/pipeline.hpp>

#ifdef ORDO_EXPECT_ERROR
using pipeline = ordo::Pipeline<ordo::Distill<ordo::T4, ordo::alpha<11, 10>>>;
#else
using pipeline = ordo::Pipeline<ordo::Distill<ordo::T4, ordo::alpha<10, 10>>>;
#endif
static_assert(pipeline::size > 0);
