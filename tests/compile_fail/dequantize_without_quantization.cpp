// Dequantize with nothing quantized before it.
// expect-error: ordo::Dequantize at this position has nothing to dequantize
// expect-error: ordo::diagnostic::nothing_to_dequantize<ordo::at_position<1>, ordo::Dequantize>
// expect-error-count: 1
#include <ordo/pipeline.hpp>

#ifdef ORDO_EXPECT_ERROR
using pipeline = ordo::Pipeline<ordo::Dequantize, ordo::Prune<30>>;
#else
using pipeline = ordo::Pipeline<ordo::QuantNF4, ordo::Dequantize, ordo::Prune<30>>;
#endif
static_assert(pipeline::size > 0);
