// The importance policy of a Prune stage is one of ordo::importance::*; anything else is named.
// expect-error: ordo::Prune<Percent, Importance, Allocation>: Importance must be one of ordo::importance::paper, activation, wanda, flap, taylor
// expect-error-count: 1
#include <ordo/pipeline.hpp>

struct magnitude {
  static constexpr std::string_view name = "magnitude";
};

#ifdef ORDO_EXPECT_ERROR
using pipeline = ordo::Pipeline<ordo::Prune<30, magnitude>, ordo::QuantNF4>;
#else
using pipeline = ordo::Pipeline<ordo::Prune<30, ordo::importance::wanda>, ordo::QuantNF4>;
#endif
static_assert(pipeline::size > 0);
