// A Pipeline is not a stage: pipelines do not nest (spell out the stages instead).
// expect-error: every argument must be a stage
// expect-error: ordo::at_position<1>, ordo::Pipeline<ordo::Prune<30> > >
// expect-error-count: 1
#include <ordo/pipeline.hpp>

#ifdef ORDO_EXPECT_ERROR
using pipeline = ordo::Pipeline<ordo::Pipeline<ordo::Prune<30>>, ordo::QuantNF4>;
#else
using pipeline = ordo::Pipeline<ordo::Prune<30>, ordo::QuantNF4>;
#endif
static_assert(pipeline::size > 0);
