// Only stages go into a Pipeline.
// expect-error: every argument must be a stage
// expect-error: ordo::diagnostic::not_a_stage<ordo::at_position<2>, int>
// expect-error-count: 1
#include <ordo/pipeline.hpp>

#ifdef ORDO_EXPECT_ERROR
using pipeline = ordo::Pipeline<ordo::Prune<30>, int>;
#else
using pipeline = ordo::Pipeline<ordo::Prune<30>>;
#endif
static_assert(pipeline::size > 0);
