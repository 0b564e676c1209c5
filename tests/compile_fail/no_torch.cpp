// The algebra compiles on its own, without LibTorch: this translation unit includes only
// <ordo/pipeline.hpp> and declares the paper's best pipeline (checked by the `no-torch` test,
// and timed by benchmarks/compile_time).
#include <ordo/pipeline.hpp>

using Best = ordo::Pipeline<ordo::Prune<30>, ordo::Distill<ordo::T4, ordo::A03>, ordo::QuantNF4>;
static_assert(Best::name() == "P-KD-Q");
