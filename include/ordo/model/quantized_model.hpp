// ordo/model/quantized_model.hpp — ordo::QuantizedModel: NF4 decoder linears, inference only,
// the run-time model type of the typestate ordo::nf4 (what QuantNF4 gives and Dequantize takes):
// forward, generate, save; no parameters for an optimizer.
#pragma once

#include <cstddef>  // std::size_t

#include <ordo/model/detail/model_base.hpp>  // model_base
#include <ordo/pipeline/state.hpp>           // nf4

namespace ordo {

class QuantizedModel : public detail::model_base<nf4> {
 public:
  using model_base::model_base;
  std::size_t blocksize = 64;
  bool double_quantization = true;
};

}  // namespace ordo
