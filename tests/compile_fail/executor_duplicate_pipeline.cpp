// The study executor runs a set: the same pipeline twice is a mistake.
// expect-error: ordo::study::execute: the same pipeline appears twice in the set
// expect-error-count: 1
#include <boost/hana/tuple.hpp>

#include <ordo/pipeline.hpp>
#include <ordo/study.hpp>

namespace user {
struct model {
  using state = ordo::dense;
};
struct context {};
inline model apply(const ordo::Prune<30>&, const model& m, context&) { return m; }
}  // namespace user

void run() {
  using P = ordo::Pipeline<ordo::Prune<30>>;
#ifdef ORDO_EXPECT_ERROR
  auto set = boost::hana::tuple_t<P, ordo::Pipeline<>, P>;
#else
  auto set = boost::hana::tuple_t<P, ordo::Pipeline<>>;
#endif
  user::model m;
  user::context c;
  (void)ordo::study::execute(set, m, c, [](auto, const auto&) {});
}
