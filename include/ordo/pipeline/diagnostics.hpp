// ordo/pipeline/diagnostics.hpp — the compile errors of ordo::Pipeline.
//
// READ THIS IF YOUR BUILD FAILS HERE. Each struct below stands for one broken rule; the
// compiler shows it with the offending stage and its position (counted from 1), e.g.
//
//   In instantiation of 'struct ordo::diagnostic::quantization_last_rule<
//       ordo::at_position<2>, ordo::Prune<30>, ordo::quantized_by<ordo::QuantNF4> >'
//   error: static assertion failed: ordo::Pipeline breaks the quantization-last rule: ...
//
// The rule: stages chain model states from `dense`. QuantNF4 leaves an NF4 model, which is
// inference only, so a stage that trains or rewrites weights (Prune, Distill, another QuantNF4)
// may follow it only after an explicit ordo::Dequantize. Dequantize needs an NF4 model.
// The traits behind these errors (ordo::is_valid_pipeline_v) can be tested without them.
#pragma once

#include <cstddef>  // std::size_t

#include <ordo/pipeline/type_list.hpp>  // dependent_false

namespace ordo {

/// Position of a stage in a pipeline, counted from 1 (shown in compile errors).
template <std::size_t N>
struct at_position {
  static constexpr std::size_t value = N;
};

/// The stage that quantized the model (shown in compile errors).
template <class Stage>
struct quantized_by {};

/// The stage right before the offending one (shown in compile errors).
template <class Stage>
struct follows {};

/// The model state at the offending position (shown in compile errors).
template <class State>
struct model_is {};

namespace diagnostic {

// `reported` is true in every diagnostic: the static_assert inside is the one error; the
// Pipeline that instantiates the diagnostic asserts `reported` and so adds no second error.

struct none {
  static constexpr bool reported = true;
};

template <class Position, class Stage, class Quantizer>
struct quantization_last_rule {
  // Fix: insert ordo::Dequantize right after the QuantNF4 named in Quantizer, or move the
  // quantization to the end of the pipeline (the paper's "Q-P-KD" is Q, Dequantize, P, KD, Q).
  static_assert(detail::dependent_false<Position, Stage, Quantizer>,
                "ordo::Pipeline breaks the quantization-last rule: the stage at this position "
                "needs a dense model, but an earlier ordo::QuantNF4 left it NF4-quantized "
                "(inference only); insert ordo::Dequantize after ordo::QuantNF4, or move "
                "ordo::QuantNF4 to the end");
  static constexpr bool reported = true;
};

template <class Position, class Stage>
struct nothing_to_dequantize {
  // Fix: remove this Dequantize, or put an ordo::QuantNF4 before it.
  static_assert(detail::dependent_false<Position, Stage>,
                "ordo::Pipeline: ordo::Dequantize at this position has nothing to dequantize: "
                "no ordo::QuantNF4 comes before it, so the model is dense here");
  static constexpr bool reported = true;
};

template <class Position, class Stage, class Previous>
struct dequantize_after_dequantize {
  // Fix: keep one ordo::Dequantize after each ordo::QuantNF4.
  static_assert(detail::dependent_false<Position, Stage, Previous>,
                "ordo::Pipeline: two ordo::Dequantize in a row: the previous ordo::Dequantize "
                "already made the model dense; remove one of them");
  static constexpr bool reported = true;
};

template <class Position, class NotAStage>
struct not_a_stage {
  // Fix: pass stage types only: ordo::Prune<N>, ordo::Distill<T, A>, ordo::QuantNF4,
  // ordo::Dequantize, or your own type that models the ordo::stage concept (stage.hpp).
  static_assert(detail::dependent_false<Position, NotAStage>,
                "ordo::Pipeline<S...>: every argument must be a stage (a type modelling the "
                "ordo::stage concept: symbol, takes, gives, trains); the type at this position "
                "is not one");
  static constexpr bool reported = true;
};

template <class Position, class Stage, class State>
struct state_mismatch {
  // Fix: the stage's `takes` must equal the `gives` of the stage before it (dense at the start).
  static_assert(detail::dependent_false<Position, Stage, State>,
                "ordo::Pipeline: the stage at this position takes a model state that the "
                "pipeline does not have there");
  static constexpr bool reported = true;
};

}  // namespace diagnostic
}  // namespace ordo
