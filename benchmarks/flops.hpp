// benchmarks/flops.hpp — model FLOPs of a decoder and the GEMM rate they are measured against,
// shared by the training benchmarks (kd_step.cpp, bench_scale.cpp).
//
//   forward_flops(config, tokens, seq)        matmul FLOPs of one forward pass
//   model_gemm_rate(config, tokens, dtype, d) FLOP/s of the model's own linear GEMMs, forward and
//                                             both backward orientations, at `tokens` rows
//   square_gemm_rate(dtype, d)                FLOP/s of a large square matmul (the device's rate)
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <tuple>

#include <torch/torch.h>

#include <ordo/model/config.hpp>

namespace bench {

inline void synchronize(const torch::Device& d) {
  if (d.is_cuda()) torch::cuda::synchronize(d.index());
}

/// Matmul FLOPs of one forward pass over `tokens` tokens of sequences of length `seq`: 2 x (the
/// linear weights and the LM head) per token, plus the attention scores and the weighted values
/// (causal: half of the full products).
inline double forward_flops(const ordo::model::decoder_config& c, double tokens, double seq) {
  double linear = 0;
  const double h = static_cast<double>(c.hidden_size), hd = static_cast<double>(c.head_dim);
  const double q = static_cast<double>(c.num_heads) * hd, kv = static_cast<double>(c.num_kv_heads) * hd;
  for (std::int64_t l = 0; l < c.num_layers; ++l)
    linear += h * (q + 2 * kv) + q * h + 3.0 * h * static_cast<double>(c.intermediate_sizes.at(l));
  linear += h * static_cast<double>(c.vocab_size);                             // LM head
  const double attention = static_cast<double>(c.num_layers) * 2.0 * q * seq;  // QK^T and PV per token
  return 2.0 * tokens * (linear + attention / 2.0);
}

/// Seconds of the best of `repeats` runs of `f` (after one warm-up).
template <class F>
double best_seconds(const torch::Device& device, int repeats, F&& f) {
  f();
  synchronize(device);
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    synchronize(device);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

/// FLOP/s of an n x n x n matmul in `dtype` on `device`, the best of a few.
inline double square_gemm_rate(torch::ScalarType dtype, const torch::Device& device) {
  torch::NoGradGuard no_grad;
  const std::int64_t n = device.is_cuda() ? 8192 : 1536;
  auto a = torch::randn({n, n}, torch::TensorOptions().device(device).dtype(dtype));
  auto b = torch::randn({n, n}, torch::TensorOptions().device(device).dtype(dtype));
  torch::Tensor c;
  const double s = best_seconds(device, 5, [&] { c = torch::matmul(a, b); });
  return 2.0 * static_cast<double>(n) * n * n / s;
}

/// FLOP/s of the model's own linear GEMMs at `tokens` rows, each shape weighted by how often one
/// forward and backward pass runs it: y = x W^T (forward), dx = dy W and dW = dy^T x (backward).
/// The attention products are left out (their shapes depend on the sequence length).
inline double model_gemm_rate(const ordo::model::decoder_config& c, std::int64_t tokens, torch::ScalarType dtype,
                              const torch::Device& device) {
  torch::NoGradGuard no_grad;
  const std::int64_t h = c.hidden_size, q = c.num_heads * c.head_dim, kv = c.num_kv_heads * c.head_dim;
  std::map<std::tuple<std::int64_t, std::int64_t>, double> uses;  // (in, out) -> weight matrices of that shape
  for (std::int64_t l = 0; l < c.num_layers; ++l) {
    const auto ffn = c.intermediate_sizes.at(static_cast<std::size_t>(l));
    uses[{h, q}] += 1;
    uses[{h, kv}] += 2;
    uses[{q, h}] += 1;
    uses[{h, ffn}] += 2;
    uses[{ffn, h}] += 1;
  }
  uses[{h, c.vocab_size}] += 1;
  const auto o = torch::TensorOptions().device(device).dtype(dtype);
  double flops = 0, seconds = 0;
  for (const auto& [shape, count] : uses) {
    const auto [in, out] = shape;
    auto x = torch::randn({tokens, in}, o), w = torch::randn({out, in}, o), dy = torch::randn({tokens, out}, o);
    // Into preallocated outputs: the time of the products alone, not of fresh pages for results.
    auto y = torch::empty({tokens, out}, o), dx = torch::empty({tokens, in}, o), dw = torch::empty({out, in}, o);
    const double each = 2.0 * static_cast<double>(tokens) * static_cast<double>(in) * static_cast<double>(out);
    const double s = best_seconds(device, 5, [&] { torch::mm_out(y, x, w.t()); }) +
                     best_seconds(device, 5, [&] { torch::mm_out(dx, dy, w); }) +
                     best_seconds(device, 5, [&] { torch::mm_out(dw, dy.t(), x); });
    flops += 3.0 * each * count;
    seconds += s * count;
  }
  return flops / seconds;
}

}  // namespace bench
