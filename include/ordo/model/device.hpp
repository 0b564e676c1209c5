// ordo/model/device.hpp — where a model lives and in which precision: `--device` and `--dtype`.
//
// `parse_device("cuda:1")` reads the device spelling every tool accepts (cpu, cuda, cuda:N);
// `require_device` checks, before any work, that this process can use it, and otherwise throws
// `device_unavailable` whose message is one line naming the device and the reason (a LibTorch
// built without CUDA, no CUDA device visible, an index past the last device).
// `parse_dtype` reads float32 | bfloat16 | float16 (also fp32, bf16, fp16); torch_dtype_name
// (model/dtype.hpp) writes the name back. `require_dtype` checks, before any work, that this
// LibTorch multiplies matrices of that dtype on the device (LibTorch 1.13 has no float16 matrix
// products on the CPU) and otherwise throws device_unavailable, one line.
#pragma once

#include <cstdint>    // std::int64_t
#include <stdexcept>  // std::invalid_argument, std::runtime_error
#include <string>     // std::string, std::to_string
#include <string_view>

#include <ATen/detail/CUDAHooksInterface.h>  // at::detail::getCUDAHooks
#include <torch/torch.h>
#include <torch/version.h>  // TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR

#include <ordo/model/dtype.hpp>  // torch_dtype_from_name

namespace ordo::model {

/// The device cannot be used by this process (the message says which and why).
class device_unavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// "cpu", "cuda" (the current CUDA device, index 0 unless set) or "cuda:N".
inline torch::Device parse_device(std::string_view text) {
  const std::string s(text);
  auto bad = [&](const std::string& why) {
    return std::invalid_argument("device \"" + s + "\": " + why + " (expected cpu, cuda or cuda:N)");
  };
  if (s == "cpu") return torch::Device(torch::kCPU);
  if (s == "cuda") return torch::Device(torch::kCUDA, 0);
  if (s.rfind("cuda:", 0) == 0) {
    const auto digits = s.substr(5);
    if (digits.empty() || digits.size() > 3 || digits.find_first_not_of("0123456789") != std::string::npos)
      throw bad("the index must be a number from 0");
    return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(std::stoi(digits)));
  }
  throw bad("unknown device");
}

/// The spelling `parse_device` reads back ("cpu", "cuda:0").
inline std::string device_name(const torch::Device& d) {
  if (d.is_cpu()) return "cpu";
  return d.str();
}

/// Throws device_unavailable unless this process can run tensors on `d` (a one-line message).
inline void require_device(const torch::Device& d) {
  if (d.is_cpu()) return;
  const auto name = device_name(d);
  if (!d.is_cuda()) throw device_unavailable("device " + name + ": ordo runs on cpu and cuda devices only");
  if (!at::detail::getCUDAHooks().hasCUDART())
    throw device_unavailable("device " + name +
                             ": this LibTorch was built without CUDA (build ordo against a CUDA LibTorch, "
                             "e.g. `./ordo torch2`)");
  const auto count = static_cast<std::int64_t>(torch::cuda::device_count());
  if (count == 0)
    throw device_unavailable("device " + name + ": no CUDA device is visible to this process (driver missing, " +
                             "no GPU, or CUDA_VISIBLE_DEVICES empty)");
  const std::int64_t index = d.has_index() ? d.index() : 0;
  if (index >= count)
    throw device_unavailable("device " + name + ": there " +
                             (count == 1 ? "is 1 CUDA device" : "are " + std::to_string(count) + " CUDA devices") +
                             " (cuda:0" + (count > 1 ? " to cuda:" + std::to_string(count - 1) : std::string()) + ")");
}

/// Throws device_unavailable unless this LibTorch multiplies matrices of `dtype` on `d` (the
/// product every linear layer makes), found by making one 2 x 2 product there: a model in a dtype
/// the device cannot multiply would otherwise load and then fail at its first layer with
/// LibTorch's many-line error. Call it after require_device(d).
inline void require_dtype(const torch::Device& d, torch::ScalarType dtype) {
  try {
    const auto a = torch::ones({2, 2}, torch::TensorOptions().device(d).dtype(dtype));
    (void)torch::addmm(a, a, a);
  } catch (const c10::Error&) {
    throw device_unavailable("dtype " + torch_dtype_name(dtype) + " on " + device_name(d) + ": this LibTorch (" +
                             std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                             ") has no " + torch_dtype_name(dtype) + " matrix products there; choose " +
                             (dtype == torch::kFloat16 ? "bfloat16 or float32" : "float32") +
                             (d.is_cpu() && dtype == torch::kFloat16 ? ", or LibTorch 2.x (`./ordo torch2`)" : ""));
  }
}

/// float32 | bfloat16 | float16 (the names config.json uses; also fp32, bf16, fp16): the dtype
/// models are held in. torch_dtype_name (model/dtype.hpp) writes it back.
inline torch::ScalarType parse_dtype(std::string_view text) {
  if (const auto t = torch_dtype_from_name(std::string(text))) return *t;
  if (text == "fp32") return torch::kFloat32;
  if (text == "bf16") return torch::kBFloat16;
  if (text == "fp16") return torch::kFloat16;
  throw std::invalid_argument("dtype \"" + std::string(text) + "\": expected float32, bfloat16 or float16");
}

/// A device and the dtype a model's dense parameters are held in there ({cpu, float32} unless
/// said otherwise; a dtype alone means the CPU).
struct placement {
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat32;

  placement() = default;
  placement(torch::ScalarType t) : dtype(t) {}  // NOLINT: implicit, `load_hf(dir, torch::kBFloat16)`
  placement(torch::Device d, torch::ScalarType t = torch::kFloat32) : device(d), dtype(t) {}
  torch::TensorOptions tensors() const { return torch::TensorOptions().device(device).dtype(dtype); }
};

}  // namespace ordo::model
