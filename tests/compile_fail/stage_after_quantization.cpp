// A stage after QuantNF4 without Dequantize breaks the quantization-last rule.
// expect-error: static assertion failed: ordo::Pipeline breaks the quantization-last rule
// expect-error: insert ordo::Dequantize after ordo::QuantNF4
// expect-error: ordo::at_position<2>, ordo::Prune<30>, ordo::quantized_by<ordo::QuantNF4>
// expect-error-count: 1
#include <ordo/pipeline.hpp>

#ifdef ORDO_EXPECT_ERROR
using pipeline = ordo::Pipeline<ordo::QuantNF4, ordo::Prune<30>>;
#else
using pipeline = ordo::Pipeline<ordo::QuantNF4, ordo::Dequantize, ordo::Prune<30>>;
#endif
static_assert(pipeline::size > 0);
