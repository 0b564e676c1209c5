// ordo/pipeline/apply.hpp — the one customization point through which stages do their work.
//
// The work of stage S on a model of type M is an overload, found by argument-dependent lookup
// (declare it in the namespace of the model, the context, or the stage):
//
//   NewModel apply(const ordo::Prune<P>&, const MyModel& model, MyContext& context);
//
// It returns a new model and leaves its input untouched, so that the study executor can reuse
// an intermediate model for several pipelines. Call it through ordo::apply_stage, which also
// checks the typestate: a model type that declares `using state = ordo::dense;` (or nf4) must
// be given to stages taking that state, and the result must declare the state the stage gives.
#pragma once

#include <type_traits>  // std::remove_cvref_t, std::is_same_v

#include <ordo/pipeline/type_list.hpp>  // dependent_false
#include <ordo/pipeline/stage.hpp>      // stage
#include <ordo/pipeline/state.hpp>      // model_state_tag

namespace ordo {

/// A model type that states its typestate (`using state = ordo::dense;` or `ordo::nf4`).
// clang-format 14 would break `requires {...} && ...` apart:
// clang-format off
template <class M>
concept stateful_model = requires { typename M::state; } && model_state_tag<typename M::state>;
// clang-format on

namespace detail::apply_cpo {

void apply() = delete;  // only overloads found by ADL take part

// What a failed lookup returns, so that the one static_assert below is the only error: later
// stages pass it through silently.
template <class S, class M, class C>
struct apply_not_found {};
template <class M>
inline constexpr bool is_apply_not_found = false;
template <class S, class M, class C>
inline constexpr bool is_apply_not_found<apply_not_found<S, M, C>> = true;

template <class M>
struct state_of {
  using type = void;
};
template <stateful_model M>
struct state_of<M> {
  using type = typename M::state;
};
template <class M>
using state_of_t = typename state_of<M>::type;

template <class S, class M, class C>
concept has_apply = requires(const S& s, const M& m, C& c) {
  apply(s, m, c);
};

struct apply_stage_fn {
  template <stage S, class M, class C>
  constexpr auto operator()(const S& s, const M& model, C& context) const {
    if constexpr (is_apply_not_found<M>) {
      return model;
    } else {
      return checked(s, model, context);
    }
  }

 private:
  template <class S, class M, class C>
  static constexpr auto checked(const S& s, const M& model, C& context) {
    if constexpr (stateful_model<M> && !std::is_same_v<state_of_t<M>, typename S::takes>) {
      static_assert(dependent_false<S, M, C>,
                    "ordo::apply_stage: the model's state (M::state) is not the state this "
                    "stage takes (S::takes)");
      return apply_not_found<S, M, C>{};
    } else if constexpr (!has_apply<S, M, C>) {
      static_assert(dependent_false<S, M, C>,
                    "ordo::apply_stage(stage, model, context): no overload "
                    "apply(const Stage&, const Model&, Context&) is visible for these types; "
                    "declare one in the namespace of the model or of the context");
      return apply_not_found<S, M, C>{};
    } else {
      using result = std::remove_cvref_t<decltype(apply(s, model, context))>;
      if constexpr (stateful_model<result>) {
        static_assert(std::is_same_v<typename result::state, typename S::gives>,
                      "ordo::apply_stage: apply(stage, model, context) returned a model whose "
                      "state is not the state the stage gives (S::gives)");
      }
      return apply(s, model, context);
    }
  }
};

}  // namespace detail::apply_cpo

/// ordo::apply_stage(stage, model, context): run one stage (see the top of this file).
inline constexpr detail::apply_cpo::apply_stage_fn apply_stage{};

/// The model type that applying S to a const M& with context C& gives.
template <class S, class M, class C>
using apply_result_t =
    std::remove_cvref_t<decltype(apply_stage(std::declval<const S&>(), std::declval<const M&>(), std::declval<C&>()))>;

}  // namespace ordo
