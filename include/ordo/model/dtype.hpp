// ordo/model/dtype.hpp — LibTorch's dtypes beside the file formats' and transformers' names.
//
//   torch_dtype(safetensors::Dtype, where)   a stored dtype as a torch dtype (error names `where`)
//   safetensors_dtype(torch dtype)           the dtype a checkpoint stores it as
//   torch_dtype_name / torch_dtype_from_name "float32", "bfloat16", "float16" (config.json)
#pragma once

#include <optional>   // std::optional
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string

#include <torch/torch.h>

#include <ordo/io/safetensors.hpp>  // safetensors::Dtype, dtype_name

namespace ordo::model {

inline torch::ScalarType torch_dtype(io::safetensors::Dtype d, const std::string& where) {
  using io::safetensors::Dtype;
  switch (d) {
    case Dtype::F32:
      return torch::kFloat32;
    case Dtype::F16:
      return torch::kFloat16;
    case Dtype::BF16:
      return torch::kBFloat16;
    case Dtype::F64:
      return torch::kFloat64;
    case Dtype::I64:
      return torch::kInt64;
    case Dtype::I32:
      return torch::kInt32;
    case Dtype::I8:
      return torch::kInt8;
    case Dtype::U8:
      return torch::kUInt8;
    default:
      throw std::invalid_argument(where + ": dtype " + std::string(io::safetensors::dtype_name(d)) +
                                  " is not supported here");
  }
}

/// The name transformers writes in config.json ("torch_dtype", "dtype") for a floating dtype.
inline std::string torch_dtype_name(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32:
      return "float32";
    case torch::kBFloat16:
      return "bfloat16";
    case torch::kFloat16:
      return "float16";
    default:
      throw std::invalid_argument(std::string("ordo::model: tensors of dtype ") + c10::toString(t) +
                                  " cannot be saved in a checkpoint");
  }
}

inline std::optional<torch::ScalarType> torch_dtype_from_name(const std::string& s) {
  if (s == "float32") return torch::kFloat32;
  if (s == "bfloat16") return torch::kBFloat16;
  if (s == "float16") return torch::kFloat16;
  return std::nullopt;
}

inline io::safetensors::Dtype safetensors_dtype(torch::ScalarType t) {
  switch (t) {
    case torch::kFloat32:
      return io::safetensors::Dtype::F32;
    case torch::kBFloat16:
      return io::safetensors::Dtype::BF16;
    case torch::kFloat16:
      return io::safetensors::Dtype::F16;
    default:
      throw std::invalid_argument(std::string("ordo::model: tensors of dtype ") + c10::toString(t) +
                                  " cannot be saved in a checkpoint");
  }
}

}  // namespace ordo::model
