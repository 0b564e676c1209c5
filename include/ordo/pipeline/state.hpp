// ordo/pipeline/state.hpp — the typestate of a model as it moves through a pipeline.
//
// A stage declares the state it takes and the state it gives. `dense` models hold trainable
// floating-point weights; `nf4` models hold 4-bit NF4 weights and are inference only. A
// Pipeline is valid when these states chain, starting from `dense`.
#pragma once

#include <string_view>  // std::string_view
#include <type_traits>  // std::is_base_of_v

namespace ordo {

/// Base of every model state tag (new states, e.g. another quantized format, derive from it).
struct model_state {};

/// Trainable floating-point weights (fp32 or bf16).
struct dense : model_state {
  static constexpr std::string_view name = "dense";
};

/// NF4 4-bit weights in the bitsandbytes format: forward and save only, no gradients.
struct nf4 : model_state {
  static constexpr std::string_view name = "nf4";
};

template <class T>
concept model_state_tag = std::is_base_of_v<model_state, T> && requires {
  { T::name } -> std::convertible_to<std::string_view>;
};

}  // namespace ordo
