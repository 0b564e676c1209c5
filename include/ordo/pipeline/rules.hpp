// ordo/pipeline/rules.hpp — when is a sequence of stages a valid pipeline?
//
// States chain from `dense`: each stage's `takes` must equal the state the previous stages
// left. ordo::is_valid_pipeline_v<S...> is the rule as a trait; ordo::Pipeline<S...> turns a
// violation into one compile error (diagnostics.hpp).
#pragma once

#include <cstddef>      // std::size_t
#include <type_traits>  // std::is_same_v, std::conditional_t

#include <ordo/pipeline/type_list.hpp>    // type_list
#include <ordo/pipeline/diagnostics.hpp>  // diagnostic::*
#include <ordo/pipeline/stage.hpp>        // stage, quantizing_stage, dequantizing_stage
#include <ordo/pipeline/state.hpp>        // dense

namespace ordo {
namespace detail {

enum class pipeline_error {
  none,
  not_a_stage,            // an argument is not a stage
  quantization_last,      // a dense-taking stage after a quantization, without Dequantize
  nothing_to_dequantize,  // a dequantization with no quantization before it
  dequantize_twice,       // a dequantization right after a dequantization
  state_mismatch,         // any other broken chain (user-defined states)
};

// The result of walking the stages. `position` counts from 1; `changer` is the last stage
// that changed the state before the offending one (void if none).
template <pipeline_error E, std::size_t Position, class Stage, class State, class Changer, class Previous>
struct analysis_result {
  static constexpr pipeline_error error = E;
  static constexpr std::size_t position = Position;
  using offending_stage = Stage;
  using state = State;  // the state reached (at the error: the state there)
  using changer = Changer;
  using previous = Previous;
};

template <std::size_t Position, class State, class Changer, class Previous, class... S>
struct analyze;

template <std::size_t Position, class State, class Changer, class Previous>
struct analyze<Position, State, Changer, Previous> {
  using type = analysis_result<pipeline_error::none, 0, void, State, Changer, Previous>;
};

template <class S, class State, class Changer, class Previous>
constexpr pipeline_error first_error() {
  if constexpr (!stage<S>) {
    return pipeline_error::not_a_stage;
  } else if constexpr (std::is_same_v<typename S::takes, State>) {
    return pipeline_error::none;
  } else if constexpr (std::is_same_v<typename S::takes, dense>) {
    return pipeline_error::quantization_last;
  } else if constexpr (std::is_same_v<State, dense> && dequantizing_stage<S>) {
    if constexpr (std::is_same_v<Changer, Previous> && dequantizing_stage<Previous>) {
      return pipeline_error::dequantize_twice;
    } else {
      return pipeline_error::nothing_to_dequantize;
    }
  } else {
    return pipeline_error::state_mismatch;
  }
}

template <class S, bool IsStage = stage<S>>
struct gives_or {
  template <class State>
  using type = typename S::gives;
};
template <class S>
struct gives_or<S, false> {
  template <class State>
  using type = State;
};

template <std::size_t Position, class State, class Changer, class Previous, class S, class... Rest>
struct analyze<Position, State, Changer, Previous, S, Rest...> {
 private:
  static constexpr pipeline_error here = first_error<S, State, Changer, Previous>();
  using next_state = typename gives_or<S>::template type<State>;
  using next_changer = std::conditional_t<std::is_same_v<next_state, State>, Changer, S>;

 public:
  using type =
      typename std::conditional_t<here == pipeline_error::none,
                                  analyze<Position + 1, next_state, next_changer, S, Rest...>,
                                  type_identity<analysis_result<here, Position, S, State, Changer, Previous>>>::type;
};

template <class... S>
using analyze_t = typename analyze<1, dense, void, void, S...>::type;

template <class A, pipeline_error E = A::error>
struct diagnostic_for {
  using type = diagnostic::none;
};
template <class A>
struct diagnostic_for<A, pipeline_error::not_a_stage> {
  using type = diagnostic::not_a_stage<at_position<A::position>, typename A::offending_stage>;
};
template <class A>
struct diagnostic_for<A, pipeline_error::quantization_last> {
  using type = diagnostic::quantization_last_rule<at_position<A::position>, typename A::offending_stage,
                                                  quantized_by<typename A::changer>>;
};
template <class A>
struct diagnostic_for<A, pipeline_error::nothing_to_dequantize> {
  using type = diagnostic::nothing_to_dequantize<at_position<A::position>, typename A::offending_stage>;
};
template <class A>
struct diagnostic_for<A, pipeline_error::dequantize_twice> {
  using type = diagnostic::dequantize_after_dequantize<at_position<A::position>, typename A::offending_stage,
                                                       follows<typename A::previous>>;
};
template <class A>
struct diagnostic_for<A, pipeline_error::state_mismatch> {
  using type =
      diagnostic::state_mismatch<at_position<A::position>, typename A::offending_stage, model_is<typename A::state>>;
};

template <class... S>
using diagnostic_t = typename diagnostic_for<analyze_t<S...>>::type;

}  // namespace detail

/// True when S... chain model states from `dense` (the quantization-last rule and the
/// Dequantize rules) and every S is a stage. The empty sequence is valid: the base model.
template <class... S>
inline constexpr bool is_valid_pipeline_v = detail::analyze_t<S...>::error == detail::pipeline_error::none;

/// The model state a valid sequence of stages leaves (dense for the empty sequence).
template <class... S>
using output_state_t = typename detail::analyze_t<S...>::state;

}  // namespace ordo
