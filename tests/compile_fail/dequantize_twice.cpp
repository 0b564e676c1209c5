// Two Dequantize in a row.
// expect-error: two ordo::Dequantize in a row
// expect-error: ordo::at_position<3>, ordo::Dequantize, ordo::follows<ordo::Dequantize>
// expect-error-count: 1
#include <ordo/pipeline.hpp>

#ifdef ORDO_EXPECT_ERROR
using pipeline = ordo::Pipeline<ordo::QuantNF4, ordo::Dequantize, ordo::Dequantize>;
#else
using pipeline = ordo::Pipeline<ordo::QuantNF4, ordo::Dequantize>;
#endif
static_assert(pipeline::size > 0);
