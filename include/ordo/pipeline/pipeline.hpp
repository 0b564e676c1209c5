// ordo/pipeline/pipeline.hpp — ordo::Pipeline<S...>: a compression pipeline as a type.
//
//   using Best = ordo::Pipeline<ordo::Prune<30>, ordo::Distill<ordo::T4, ordo::A03>, ordo::QuantNF4>;
//   static_assert(Best::name() == "P-KD-Q");
//   auto compressed = Best::run(model, context);   // apply_stage for each stage, in order
//
// An invalid order does not compile (rules.hpp, diagnostics.hpp). Pipeline<> is the identity:
// the base model, named "base". Traits of a pipeline type that do not instantiate it (and so
// also work for invalid ones): pipeline_name_v, pipeline_is_valid_v, pipeline_stages_t.
// Example: examples/orderings.cpp.
#pragma once

#include <cstddef>      // std::size_t
#include <string>       // std::string
#include <string_view>  // std::string_view

#include <ordo/pipeline/apply.hpp>                 // apply_stage
#include <ordo/pipeline/detail/static_string.hpp>  // joined
#include <ordo/pipeline/type_list.hpp>             // type_list, take_t
#include <ordo/pipeline/events.hpp>                // stage_event, observers
#include <ordo/pipeline/rules.hpp>                 // is_valid_pipeline_v, diagnostic_t
#include <ordo/pipeline/stages.hpp>                // the stages (for users of this header)

namespace ordo {

template <class... S>
struct Pipeline;

namespace detail {

template <class S>
struct symbol_of {
  static constexpr std::string_view value = "?";
};
template <stage S>
struct symbol_of<S> {
  static constexpr std::string_view value = S::symbol;
};

template <class S>
inline constexpr bool trains_v = false;
template <stage S>
inline constexpr bool trains_v<S> = S::trains;

struct base_name {
  static constexpr std::string_view value = "base";
};

template <class List>
struct chain_name;
template <>
struct chain_name<type_list<>> : base_name {};
template <class... S>
requires(sizeof...(S) > 0) struct chain_name<type_list<S...>> : joined<dash, symbol_of<S>...> {
};

template <class S>
std::string describe_stage() {
  if constexpr (requires { S::describe(); }) {
    return std::string(S::describe());
  } else {
    return std::string(symbol_of<S>::value);
  }
}

// Applies stages I..N-1 of List to `model`, emitting events named after pipeline `Name`.
template <class List, std::size_t I, class Model, class Context, class Observer>
auto run_stages(const Model& model, Context& context, Observer& observer, std::size_t& sequence, std::size_t planned) {
  if constexpr (I == List::size) {
    return Model(model);
  } else {
    using S = at_t<I, List>;
    stage_event event{chain_name<List>::value,
                      chain_name<take_t<I + 1, List>>::value,
                      S::symbol,
                      I + 1,
                      List::size,
                      S::trains,
                      ++sequence,
                      planned,
                      {}};
    auto next = observed(observer, event, [&] { return apply_stage(S{}, model, context); });
    if constexpr (I + 1 == List::size) {
      return next;
    } else {
      return run_stages<List, I + 1>(next, context, observer, sequence, planned);
    }
  }
}

}  // namespace detail

template <class P>
struct pipeline_traits;  // defined for Pipeline<S...> only

template <class... S>
struct pipeline_traits<Pipeline<S...>> {
  using stages = detail::type_list<S...>;
  static constexpr std::size_t size = sizeof...(S);
  static constexpr bool valid = is_valid_pipeline_v<S...>;
  static constexpr std::string_view name = detail::chain_name<stages>::value;
  static constexpr std::size_t training_stages = (std::size_t{0} + ... + std::size_t{detail::trains_v<S>});
};

/// "P-KD-Q" for Pipeline<Prune<30>, Distill<T4, A03>, QuantNF4>; "base" for Pipeline<>.
template <class P>
inline constexpr std::string_view pipeline_name_v = pipeline_traits<P>::name;

/// Whether a Pipeline type is valid, without instantiating it (and so without its error).
template <class P>
inline constexpr bool pipeline_is_valid_v = pipeline_traits<P>::valid;

template <class P>
using pipeline_stages_t = typename pipeline_traits<P>::stages;

template <class P>
concept valid_pipeline = pipeline_is_valid_v<P>;

template <class... S>
struct Pipeline {
 private:
  // READ THIS IF YOUR BUILD FAILS HERE: the stages S... break a rule of the algebra. The error
  // above names the rule; the diagnostic type in the instantiation context names the stage and
  // its position (from 1). See ordo/pipeline/diagnostics.hpp for each rule and its fix.
  static_assert(detail::diagnostic_t<S...>::reported);

 public:
  using stages = detail::type_list<S...>;
  /// The model state the pipeline leaves: ordo::dense or ordo::nf4.
  using output_state = output_state_t<S...>;
  static constexpr std::size_t size = sizeof...(S);
  static constexpr std::size_t training_stages = pipeline_traits<Pipeline>::training_stages;

  /// The chain of stage symbols: "P-KD-Q", "Q-D-P-KD-Q"; "base" for the empty pipeline.
  static constexpr std::string_view name() noexcept { return pipeline_traits<Pipeline>::name; }

  /// The stages with their parameters: "Prune<30> -> Distill<T=4, alpha=0.3> -> ...".
  static std::string description() {
    if constexpr (sizeof...(S) == 0) {
      return "base";
    } else {
      std::string out;
      ((out += (out.empty() ? "" : " -> ") + detail::describe_stage<S>()), ...);
      return out;
    }
  }

  /// Applies the stages in order through ordo::apply_stage; returns the final model (a copy of
  /// `model` for the empty pipeline). Its type follows the typestate: a stateful model type
  /// ends with `state == output_state`.
  template <class Model, class Context>
  static auto run(const Model& model, Context& context) {
    detail::no_observer none;
    return run(model, context, none);
  }

  /// As above, reporting stage_events to `observer` (see events.hpp).
  template <class Model, class Context, class Observer>
  static auto run(const Model& model, Context& context, Observer& observer) {
    std::size_t sequence = 0;
    auto result = detail::run_stages<stages, 0>(model, context, observer, sequence, size);
    if constexpr (stateful_model<decltype(result)>) {
      static_assert(std::is_same_v<typename decltype(result)::state, output_state>,
                    "ordo::Pipeline::run: the final model's state differs from the pipeline's "
                    "output_state");
    }
    return result;
  }
};

}  // namespace ordo
