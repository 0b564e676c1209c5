// Quantizing an already quantized model is the same rule: QuantNF4 takes a dense model.
// expect-error: ordo::Pipeline breaks the quantization-last rule
// expect-error: ordo::at_position<3>, ordo::QuantNF4, ordo::quantized_by<ordo::QuantNF4>
// expect-error-count: 1
#include <ordo/pipeline.hpp>

#ifdef ORDO_EXPECT_ERROR
using pipeline = ordo::Pipeline<ordo::Prune<30>, ordo::QuantNF4, ordo::QuantNF4>;
#else
using pipeline = ordo::Pipeline<ordo::Prune<30>, ordo::QuantNF4, ordo::Dequantize, ordo::QuantNF4>;
#endif
static_assert(pipeline::size > 0);
