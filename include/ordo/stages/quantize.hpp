// ordo/stages/quantize.hpp — the Q and D stages at run time.
//
//   apply(QuantizeNF4<B, DQ>, const DenseModel&, Context&) -> QuantizedModel
//       every linear of the decoder layers to NF4 with blocksize B (double quantization of the
//       scales when DQ is on), bitsandbytes' rule; embeddings, norms and lm_head stay dense.
//   apply(Dequantize, const QuantizedModel&, Context&) -> DenseModel
//       back to dense, trainable weights holding exactly the values the NF4 weights stand for.
#pragma once

#include <ordo/model/transform.hpp>        // clone, quantize_linears, dequantize_linears
#include <ordo/pipeline/stages.hpp>        // QuantizeNF4, Dequantize
#include <ordo/stages/context.hpp>         // Context
#include <ordo/model/dense_model.hpp>      // DenseModel
#include <ordo/model/quantized_model.hpp>  // QuantizedModel

namespace ordo {

template <unsigned long long Blocksize, double_quant DoubleQuant>
QuantizedModel apply(const QuantizeNF4<Blocksize, DoubleQuant>& stage, const DenseModel& model, Context& context) {
  context.report(stage.describe(), 0.0);
  auto lm = model::clone(model.lm());
  model::quantize_linears(lm, Blocksize, stage.double_quantization);
  lm->eval();
  QuantizedModel out(lm, model.shared_tokenizer(), model.chat_template(), model.source());
  out.blocksize = Blocksize;
  out.double_quantization = stage.double_quantization;
  context.report(stage.describe(), 1.0);
  return out;
}

inline DenseModel apply(const Dequantize& stage, const QuantizedModel& model, Context& context) {
  context.report(stage.describe(), 0.0);
  auto lm = model::clone(model.lm());
  // The model's dtype (its embeddings'): a bf16 model's linears come back bf16 like the rest of
  // it, not fp32 beside bf16 norms (one dtype is what training and fused optimizers expect).
  model::dequantize_linears(lm, lm->dtype());
  DenseModel out(lm, model.shared_tokenizer(), model.chat_template(), model.source());
  context.report(stage.describe(), 1.0);
  return out;
}

}  // namespace ordo
