// Running a stage needs an apply(stage, model, context) overload for that model.
// expect-error: no overload apply(const Stage&, const Model&, Context&) is visible for these types
// expect-error-count: 1
#include <ordo/pipeline.hpp>

namespace user {
struct model {};
struct context {};
#ifndef ORDO_EXPECT_ERROR
inline model apply(const ordo::QuantNF4&, const model& m, context&) { return m; }
#endif
}  // namespace user

void run() {
  user::model m;
  user::context c;
  (void)ordo::Pipeline<ordo::QuantNF4>::run(m, c);
}
