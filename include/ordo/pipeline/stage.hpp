// ordo/pipeline/stage.hpp — what makes a type a stage.
//
// A stage is an empty type whose compile-time parameters say what to do, and whose traits say
// how it fits in a pipeline:
//
//   struct MyStage {
//     static constexpr std::string_view symbol = "X";   // used in names such as "P-X-Q"
//     using takes = ordo::dense;                          // model state it needs
//     using gives = ordo::dense;                          // model state it leaves
//     static constexpr bool trains = false;               // does it run gradient steps?
//   };
//
// ordo's own stages are in stages.hpp; the work a stage does is an overload
// `apply(stage, model, context)` found through ordo::apply_stage (apply.hpp).
#pragma once

#include <concepts>     // std::convertible_to, std::same_as
#include <string_view>  // std::string_view

#include <ordo/pipeline/state.hpp>  // model_state_tag, dense, nf4

namespace ordo {

// clang-format 14 would break `requires {...} && ...` apart:
// clang-format off
template <class S>
concept stage = requires {
  { S::symbol } -> std::convertible_to<std::string_view>;
  { S::trains } -> std::convertible_to<bool>;
  typename S::takes;
  typename S::gives;
} && model_state_tag<typename S::takes> && model_state_tag<typename S::gives>;
// clang-format on

/// A stage that turns a dense model into a quantized one (QuantNF4).
template <class S>
concept quantizing_stage =
    stage<S> && std::same_as<typename S::takes, dense> && !std::same_as<typename S::gives, dense>;

/// A stage that turns a quantized model back into a dense one (Dequantize).
template <class S>
concept dequantizing_stage =
    stage<S> && !std::same_as<typename S::takes, dense> && std::same_as<typename S::gives, dense>;

}  // namespace ordo
