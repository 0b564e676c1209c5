// apply_stage checks the typestate of models that declare it: Prune takes a dense model.
// expect-error: ordo::apply_stage: the model's state (M::state) is not the state this stage takes
// expect-error-count: 1
#include <ordo/pipeline.hpp>

namespace user {
template <class State>
struct model {
  using state = State;
};
struct context {};
template <class State>
model<State> apply(const ordo::Prune<30>&, const model<State>& m, context&) {
  return m;
}
}  // namespace user

void run() {
#ifdef ORDO_EXPECT_ERROR
  user::model<ordo::nf4> m;
#else
  user::model<ordo::dense> m;
#endif
  user::context c;
  (void)ordo::apply_stage(ordo::Prune<30>{}, m, c);
}
