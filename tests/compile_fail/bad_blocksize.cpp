// NF4 blocksizes are powers of two from 32 to 4096.
// expect-error: Blocksize must be a power of two from 32 to 4096
// expect-error: ordo::QuantizeNF4<48
// expect-error-count: 1
#include <ordo/pipeline.hpp>

#ifdef ORDO_EXPECT_ERROR
using pipeline = ordo::Pipeline<ordo::QuantizeNF4<48>>;
#else
using pipeline = ordo::Pipeline<ordo::QuantizeNF4<32>>;
#endif
static_assert(pipeline::size > 0);
