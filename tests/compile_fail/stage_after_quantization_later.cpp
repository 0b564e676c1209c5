// The rule holds at any position: P-Q-KD (the paper's raw order) fails at position 3.
// expect-error: ordo::Pipeline breaks the quantization-last rule
// expect-error: ordo::at_position<3>, ordo::Distill<ordo::temperature<4, 1>, ordo::alpha<3, 10> >
// expect-error-count: 1
#include <ordo/pipeline.hpp>

#ifdef ORDO_EXPECT_ERROR
using pipeline = ordo::Pipeline<ordo::Prune<30>, ordo::QuantNF4, ordo::Distill<ordo::T4, ordo::A03>>;
#else
using pipeline = ordo::Pipeline<ordo::Prune<30>, ordo::QuantNF4, ordo::Dequantize, ordo::Distill<ordo::T4, ordo::A03>,
                                ordo::QuantNF4>;
#endif
static_assert(pipeline::name().size() > 0);
