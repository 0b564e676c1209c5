// ordo/model/decoder.hpp — the Llama/Qwen2-family causal decoder in LibTorch.
//
// RMSNorm, rotary position embeddings (plain, linear and Llama 3 scaling), grouped-query
// attention with optional q/k/v bias (Qwen2), a SwiGLU MLP whose width may differ per layer
// (pruned models), tied or separate LM head, padding masks and a KV cache. Parameter names
// follow transformers' (`model.layers.0.self_attn.q_proj.weight`, ...), so checkpoints load and
// save by name. Parity with transformers is tested on tiny random models
// (tests/decoder/make_decoder_fixtures.py).
//
// Speed on the CPU: a single row (batch-1 decoding) goes through matrix-vector products;
// grouped-query heads share their K/V without copies; unpadded causal attention runs in query
// chunks that skip the keys after them (see detail::causal_attention).
#pragma once

#include <algorithm>  // std::find
#include <array>      // std::array
#include <atomic>     // std::atomic
#include <memory>     // std::shared_ptr
#include <mutex>      // std::mutex, std::lock_guard
#include <utility>    // std::pair
#include <cmath>      // std::sqrt, M_PI
#include <cstdint>    // std::int64_t
#include <cstring>    // std::memcpy
#include <functional> // std::function
#include <optional>   // std::optional
#include <sstream>    // std::ostringstream
#include <stdexcept>  // std::invalid_argument
#include <string>     // std::string
#include <type_traits>  // std::integral_constant
#include <vector>     // std::vector

#include <torch/torch.h>
#if defined(ORDO_HAVE_KERNELS) && defined(ORDO_TORCH_CUDA)  // a CUDA LibTorch and ordo's kernels
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <ordo/kernels/nf4.hpp>  // ordo::cuda::nf4::gemv
#endif

#include <ordo/quant/f32_cpu.hpp>       // quant::f32::gemv_batch (a few fp32 rows)
#include <ordo/quant/nf4_cpu.hpp>       // quant::nf4::Quantized, dequantize_blocks, gemv
#include <ordo/quant/nf4_batch_cpu.hpp> // quant::nf4::gemv_batch (a few rows against NF4 weights)
#include <ordo/quant/q8_cpu.hpp>        // quant::q8::quantize, gemv (the 8-bit head)
#include <ordo/model/config.hpp>        // decoder_config
#include <ordo/model/device.hpp>        // placement
#include <ordo/model/kernel_threads.hpp>  // torch_runner
#include <ordo/model/torch_compat.hpp>  // compat::autocast_enabled

namespace ordo::model {

/// Keys and values of past positions, per layer: [batch, kv_heads, past, head_dim].
/// New positions are appended in place, on any device and dtype: keys[i] and values[i] are the
/// first `past` positions of key_store[i] / value_store[i] [batch, kv_heads, capacity, head_dim],
/// made for `reserve` positions when that is set (generate sets the prompt plus the new tokens:
/// the stores are never copied), else growing by doubling: amortized O(1) per token instead of
/// copying the whole cache every step. A copied kv_cache shares the stores until one of the
/// copies decodes: that one takes stores of its own (the shared `owner` tells). Appends that
/// autograd records (gradients on) concatenate instead.
struct kv_cache {
  std::vector<torch::Tensor> keys;
  std::vector<torch::Tensor> values;
  std::vector<torch::Tensor> key_store;
  std::vector<torch::Tensor> value_store;
  std::shared_ptr<const int> owner;
  std::int64_t reserve = 0;  ///< positions the stores are made for at first (0: grow by doubling)
  std::int64_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(2); }

  /// Before a forward appends to the cache: `layers` slots, and stores this cache alone writes
  /// (new ones when it has none or shares them with a copy).
  void prepare(std::size_t layers) {
    if (keys.empty()) {
      keys.resize(layers);
      values.resize(layers);
    }
    if (!owner || owner.use_count() > 1) {
      owner = std::make_shared<const int>(0);
      key_store.assign(layers, torch::Tensor());
      value_store.assign(layers, torch::Tensor());
    }
  }
};

namespace detail {

/// Inverse RoPE frequencies [head_dim / 2] for the config's scaling type, in fp32.
inline torch::Tensor rope_inverse_frequencies(const decoder_config& c) {
  const auto half = c.head_dim / 2;
  auto exponent = torch::arange(0, c.head_dim, 2, torch::kFloat64) / static_cast<double>(c.head_dim);
  auto inv = 1.0 / torch::pow(torch::tensor(c.rope_theta, torch::kFloat64), exponent);
  if (c.rope.type == "linear") {
    inv = inv / c.rope.factor;
  } else if (c.rope.type == "llama3") {
    // Long wavelengths are slowed by `factor`, short ones kept, the band between interpolated.
    const double old_len = static_cast<double>(c.rope.original_max_position_embeddings);
    const double low_wavelen = old_len / c.rope.low_freq_factor;
    const double high_wavelen = old_len / c.rope.high_freq_factor;
    auto wavelen = 2.0 * M_PI / inv;
    auto scaled = torch::where(wavelen > low_wavelen, inv / c.rope.factor, inv);
    auto smooth = (old_len / wavelen - c.rope.low_freq_factor) / (c.rope.high_freq_factor - c.rope.low_freq_factor);
    auto smoothed = (1.0 - smooth) * scaled / c.rope.factor + smooth * scaled;
    auto medium = (wavelen >= high_wavelen).logical_and(wavelen <= low_wavelen);
    inv = torch::where(medium, smoothed, scaled);
  }
  TORCH_CHECK(inv.size(0) == half);
  return inv.to(torch::kFloat32);
}

inline torch::Tensor rotate_half(const torch::Tensor& x) {
  auto halves = x.chunk(2, -1);
  return torch::cat({-halves[1], halves[0]}, -1);
}

/// RoPE: x * cos + rotate_half(x) * sin, for x [B, heads, T, D] and cos, sin [T, D].
inline torch::Tensor rotary(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  return x * cos + rotate_half(x) * sin;
}

/// Row counts up to which few_rows_product streams the weight itself instead of calling the
/// BLAS: a GEMM with a handful of rows copies ("packs") the whole weight on every call. On the
/// 2-core Zen 4 machine (LibTorch 1.13, OpenBLAS), SmolLM2's shapes: 1.4-5x faster than
/// `linear` up to 8 rows, 0.8-0.99x at 16.
inline constexpr std::int64_t few_rows_limit = 8;

/// x W^T for x of at most few_rows_limit rows (x [..., in], fp32, on the CPU) when no gradient
/// is needed: one row is ordo's GEMV (quant/f32_cpu.hpp), several its batched form, which reads
/// each weight row once for all of them and sums every product as the GEMV sums it for that
/// row alone (a row's floats do not depend on the other rows or the thread count; rows over
/// LibTorch's threads). One row that needs a gradient is LibTorch's `mv` (it streams W once:
/// about 1.3x the 1-row gemm of `linear`). Undefined otherwise (the caller then uses
/// linear/matmul).
inline torch::Tensor few_rows_product(const torch::Tensor& x, const torch::Tensor& w) {
  const auto in = w.size(1);
  if (x.dim() == 0 || x.size(-1) != in || x.numel() > few_rows_limit * in || x.scalar_type() != torch::kFloat32 ||
      w.scalar_type() != torch::kFloat32 || !x.device().is_cpu() || !w.device().is_cpu())
    return {};
  const auto rows = x.numel() / in;
  auto shape = x.sizes().vec();
  shape.back() = w.size(0);
  const bool needs_grad = torch::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad());
  if (!needs_grad && w.stride(1) == 1 && w.stride(0) >= in) {
    const auto flat = x.reshape({rows, in}).contiguous();
    auto y = torch::empty({rows, w.size(0)}, torch::kFloat32);
    quant::f32::Options o;
    o.runner = torch_runner();
    const auto out = static_cast<std::size_t>(w.size(0)), cols = static_cast<std::size_t>(in);
    quant::f32::gemv_batch(w.data_ptr<float>(), out, cols, static_cast<std::size_t>(w.stride(0)), flat.data_ptr<float>(),
                           static_cast<std::size_t>(rows), cols, y.data_ptr<float>(), out, o);
    return y.view(shape);
  }
  if (rows == 1) return torch::mv(w, x.reshape({in})).view(shape);
  return {};
}

/// A copy of a frozen fp32 weight in autocast's lower precision, cast once instead of on every
/// forward pass (CausalLM::keep_autocast_copies). choose(w) gives the copy while one is asked
/// for, autocast is on for w's device in that dtype and no gradient is recorded for w; the copy
/// is made at the first such call and again when w has changed since (its version counter).
/// The same values as autocast's own cast (the same conversion), so the same results.
struct autocast_copy {
  std::optional<torch::ScalarType> dtype;  ///< asked for; nullopt: none
  torch::Tensor copy;
  std::int64_t version = -1;

  const torch::Tensor& choose(const torch::Tensor& w) {
    if (!dtype || !w.defined() || w.scalar_type() != torch::kFloat32) return w;
    const auto type = w.device().type();
    if (!compat::autocast_enabled(type) || compat::autocast_dtype(type) != *dtype) return w;
    if (torch::GradMode::is_enabled() && w.requires_grad()) return w;
    if (!copy.defined() || version != static_cast<std::int64_t>(w._version())) {
      torch::NoGradGuard no_grad;
      copy = w.detach().to(*dtype);
      version = static_cast<std::int64_t>(w._version());
    }
    return copy;
  }
  void ask(std::optional<torch::ScalarType> d) {
    dtype = d;
    copy = torch::Tensor();
    version = -1;
  }
};

/// The positions a layer's KV store is made for when `needed` positions do not fit in the one it
/// has (`past` of them already there): `reserve` when they fit in it; else exactly `needed` for a
/// first forward (a prompt may be all there is), twice `needed` (at least 64) for a cache that
/// grows.
inline std::int64_t kv_capacity(std::int64_t needed, std::int64_t past, std::int64_t reserve) {
  if (reserve >= needed) return reserve;
  return past == 0 ? needed : std::max<std::int64_t>(2 * needed, 64);
}

/// Before T positions are appended after the `past` ones of one layer's keys (or values) `view`:
/// keeps `store` when `view` is its start and it is a contiguous [B, kv_heads, >= past + T, D]
/// tensor of `options`' dtype and device, else makes a new one of kv_capacity(past + T, past,
/// reserve) positions with the past copied once. The caller writes positions past..past+T-1.
inline void make_room(const torch::Tensor& view, torch::Tensor& store, std::int64_t past, std::int64_t T,
                      std::int64_t B, std::int64_t kv_heads, std::int64_t D, const torch::TensorOptions& options,
                      std::int64_t reserve) {
  const bool fits = store.defined() && view.defined() && view.data_ptr() == store.data_ptr() &&
                    view.size(2) == past && store.size(0) == B && store.size(1) == kv_heads && store.size(3) == D &&
                    store.size(2) >= past + T && store.dtype() == options.dtype() &&
                    store.device() == options.device() && store.is_contiguous();
  if (fits) return;
  auto grown = torch::empty({B, kv_heads, kv_capacity(past + T, past, reserve), D}, options);
  if (past > 0) grown.narrow(2, 0, past).copy_(view);
  store = grown;
}

/// Appends `rows` [B, kv_heads, T, head_dim] after the positions of one layer's keys (or values)
/// `view`, in its store (make_room); `view` becomes the store's first past + T positions.
inline void append_positions(torch::Tensor& view, torch::Tensor& store, const torch::Tensor& rows,
                             std::int64_t reserve) {
  const std::int64_t past = view.defined() ? view.size(2) : 0, T = rows.size(2);
  make_room(view, store, past, T, rows.size(0), rows.size(1), rows.size(3), rows.options(), reserve);
  store.narrow(2, past, T).copy_(rows);
  view = store.narrow(2, 0, past + T);
}

/// The additive causal mask [T, past + T] of T queries at positions past..past+T-1: 0 where the
/// key is at or before the query, a large negative after it (not -inf: fully masked rows of
/// padding queries stay finite).
inline constexpr float masked_score = -1e30f;
inline torch::Tensor causal_bias(std::int64_t T, std::int64_t past, const torch::TensorOptions& opts) {
  auto q_pos = torch::arange(past, past + T, opts.dtype(torch::kLong)).unsqueeze(1);
  auto k_pos = torch::arange(0, past + T, opts.dtype(torch::kLong)).unsqueeze(0);
  return torch::zeros({T, past + T}, opts.dtype(torch::kFloat32)).masked_fill(k_pos > q_pos, masked_score);
}

/// softmax(q k^T / sqrt(D) + mask) v for q [B, heads, T, D] and k, v [B, kv_heads, S, D], with
/// `mask` additive and broadcastable to [B, 1, T, S] (or undefined: none); returns
/// [B, T, heads * D]. Grouped-query attention without copying K and V per query head: the
/// query heads that share a KV head are stacked as rows of one matrix, q [B, kv_heads,
/// groups * T, D], which multiplies that head's keys and values directly.
inline torch::Tensor grouped_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                       const torch::Tensor& mask) {
  const auto B = q.size(0), heads = q.size(1), T = q.size(2), D = q.size(3);
  const auto kv_heads = k.size(1), S = k.size(2), groups = heads / kv_heads;
  auto qg = q.reshape({B, kv_heads, groups * T, D});
  torch::Tensor scores;
  if (q.scalar_type() == torch::kFloat32 || q.scalar_type() == torch::kFloat64) {
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    scores = torch::matmul(qg * scale, k.transpose(-2, -1));  // 1/sqrt(D) on the smaller operand
  } else {  // reduced precision: products in the weights' dtype, scaled in fp32
    scores = torch::matmul(qg, k.transpose(-2, -1)).to(torch::kFloat32) / std::sqrt(static_cast<double>(D));
  }
  if (mask.defined()) {
    auto s5 = scores.view({B, kv_heads, groups, T, S});
    if (torch::GradMode::is_enabled() && scores.requires_grad())
      scores = (s5 + mask.unsqueeze(2)).view(scores.sizes());
    else
      s5.add_(mask.unsqueeze(2));
  }
  auto probs = torch::softmax(scores, -1).to(q.scalar_type());
  // [B, kv_heads, groups * T, D] is [B, heads, T, D] in memory
  return torch::matmul(probs, v).view({B, heads, T, D}).transpose(1, 2).reshape({B, T, heads * D});
}

/// Causal attention without padding, in fp32 on the CPU: softmax(q k^T * scale) v for q
/// [B, heads, T, D] at positions S-T..S-1 and k, v [B, kv_heads, S, D]; returns [B, T, heads * D].
/// The queries are cut into chunks of 64 positions; a chunk multiplies only the keys up to its
/// last position (about 40 % fewer products than the full square at 256 tokens), with the causal
/// mask applied to its diagonal block alone. The query heads sharing a KV head are rows of one
/// matrix (no copies of K and V). The same operations run with and without gradients.
inline torch::Tensor causal_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      double scale) {
  const auto B = q.size(0), H = q.size(1), T = q.size(2), D = q.size(3);
  const auto KV = k.size(1), S = k.size(2), past = S - T, groups = H / KV;
  constexpr std::int64_t chunk = 64;
  const auto chunks = (T + chunk - 1) / chunk;
  // q scaled, as [B, kv_heads, T, groups, D]: a chunk's rows of one KV head are one matrix
  auto qs = (q.view({B, KV, groups, T, D}) * scale).permute({0, 1, 3, 2, 4}).contiguous();
  auto out = torch::empty({B, T, H, D}, q.options());
  auto after = torch::ones({chunk, chunk}, q.options().dtype(torch::kBool)).triu(1);  // key after query
  // one chunk of queries of every batch row and KV head: [B * kv_heads, n * groups, keys]
  auto run = [&](std::int64_t c) {
    const auto t0 = c * chunk, n = std::min(chunk, T - t0), keys = past + t0 + n;
    auto rows = qs.narrow(2, t0, n).reshape({B * KV, n * groups, D});
    auto scores = torch::bmm(rows, k.narrow(2, 0, keys).reshape({B * KV, keys, D}).transpose(1, 2));
    scores.view({B * KV, n, groups, keys})
        .narrow(3, past + t0, n)
        .masked_fill_(after.narrow(0, 0, n).narrow(1, 0, n).unsqueeze(1), masked_score);
    auto o = torch::bmm(torch::softmax(scores, -1), v.narrow(2, 0, keys).reshape({B * KV, keys, D}));
    out.narrow(1, t0, n).view({B, n, KV, groups, D}).copy_(o.view({B, KV, n, groups, D}).transpose(1, 2));
  };
  for (std::int64_t c = 0; c < chunks; ++c) run(c);
  return out.view({B, T, H * D});
}

/// The value sums of one-token attention: out[h][d] = sum over s = 0..S-1, in that order, of
/// probs[h][s] * V[s][d], V the rows of query head h's KV head (h / (heads / kv_heads)) in
/// `values` (capacity rows of D per KV head). Each sum starts from zero and adds one row at a
/// time in fp32, a product then a sum, whatever the split below: the same values on any thread
/// count. A unit of work is a KV head, up to three of its query heads and 16 of the D values: it
/// reads its rows of V once for all its heads (so V is read once per three query heads, not once
/// per head: SmolLM2 has three per KV head) with the sums in registers; the D % 16 values left
/// are summed through `out`, which must hold zeros.
inline void attention_value_sums(const float* probs, const float* values, std::int64_t capacity, std::int64_t S,
                                 std::int64_t heads, std::int64_t kv_heads, std::int64_t D, float* out) {
  using f4 = float __attribute__((vector_size(16)));  // 4-float vectors (SSE, the x86-64 baseline)
  const auto load = [](f4& v, const float* p) { std::memcpy(&v, p, sizeof v); };
  const std::int64_t groups = heads / kv_heads, batches = (groups + 2) / 3, full = D / 16;
  const std::int64_t chunks = full + (D % 16 != 0 ? 1 : 0);
  // Sixteen values of up to three heads over all rows: named accumulators (GCC keeps arrays of
  // them in memory), one row's 16 values loaded once for every head.
  const auto sixteen = [&](auto heads_here, const float* V, std::int64_t d0, std::int64_t h0) {
    constexpr int n = decltype(heads_here)::value;  // 1, 2 or 3
    const float* p0 = probs + h0 * S;
    const float* p1 = n > 1 ? p0 + S : p0;
    const float* p2 = n > 2 ? p0 + 2 * S : p0;
    f4 a0 = {}, a1 = {}, a2 = {}, a3 = {}, b0 = {}, b1 = {}, b2 = {}, b3 = {}, c0 = {}, c1 = {}, c2 = {}, c3 = {}, x;
    for (std::int64_t s = 0; s < S; ++s) {
      const float* v = V + s * D + d0;
      const float q0 = p0[s], q1 = p1[s], q2 = p2[s];
      load(x, v), a0 += q0 * x;
      if constexpr (n > 1) b0 += q1 * x;
      if constexpr (n > 2) c0 += q2 * x;
      load(x, v + 4), a1 += q0 * x;
      if constexpr (n > 1) b1 += q1 * x;
      if constexpr (n > 2) c1 += q2 * x;
      load(x, v + 8), a2 += q0 * x;
      if constexpr (n > 1) b2 += q1 * x;
      if constexpr (n > 2) c2 += q2 * x;
      load(x, v + 12), a3 += q0 * x;
      if constexpr (n > 1) b3 += q1 * x;
      if constexpr (n > 2) c3 += q2 * x;
    }
    const f4 sums[3][4] = {{a0, a1, a2, a3}, {b0, b1, b2, b3}, {c0, c1, c2, c3}};
    for (int j = 0; j < n; ++j) std::memcpy(out + (h0 + j) * D + d0, sums[j], sizeof sums[j]);
  };
  constexpr std::int64_t work_per_thread = 1 << 15;  // multiply-adds; threads start at ~32 K each
  const std::int64_t units = kv_heads * batches * chunks;
  at::parallel_for(0, units, std::max<std::int64_t>(1, work_per_thread / (S * 16 * std::min<std::int64_t>(groups, 3))),
                   [&](std::int64_t u0, std::int64_t u1) {
    for (std::int64_t u = u0; u < u1; ++u) {
      const std::int64_t g = u / (batches * chunks), b = u / chunks % batches, c = u % chunks;
      const std::int64_t h0 = g * groups + 3 * b, n = std::min<std::int64_t>(3, groups - 3 * b);
      const float* V = values + g * capacity * D;
      if (c < full) {
        if (n == 3) sixteen(std::integral_constant<int, 3>{}, V, 16 * c, h0);
        else if (n == 2) sixteen(std::integral_constant<int, 2>{}, V, 16 * c, h0);
        else sixteen(std::integral_constant<int, 1>{}, V, 16 * c, h0);
        continue;
      }
      for (std::int64_t h = h0; h < h0 + n; ++h) {  // the last D % 16 values, through `out`
        const float* ph = probs + h * S;
        float* o = out + h * D;
        for (std::int64_t s = 0; s < S; ++s) {
          const float p = ph[s];
          const float* v = V + s * D;
          std::int64_t d = 16 * full;
          for (; d + 4 <= D; d += 4) {
            f4 acc, x;
            load(acc, o + d), load(x, v + d);
            acc += p * x;
            std::memcpy(o + d, &acc, sizeof acc);
          }
          for (; d < D; ++d) o[d] += p * v[d];
        }
      }
    }
  });
}

}  // namespace detail

/// How a new CausalLM's parameters are made: where and in which dtype, and whether they are
/// drawn at random (each module's default initialisation) or left uninitialised for a loader
/// that fills them tensor by tensor (the host never holds a second copy of the model). The
/// default, {cpu, float32, random}, builds exactly what `CausalLM(config)` always built.
struct build_options : placement {
  bool random = true;

  build_options() = default;
  build_options(placement p, bool draw) : placement(p), random(draw) {}
};

namespace detail {

/// NF4 kernel options that split the work over LibTorch's intra-op threads (torch_runner).
inline quant::nf4::Options nf4_options(std::size_t blocksize) {
  quant::nf4::Options o;
  o.blocksize = blocksize;
  o.runner = torch_runner();
  return o;
}

/// Copies of something kept per device, each made once on first use (thread-safe) and shared by
/// the copies of its owner: an NF4 weight's tensors, the RoPE frequencies.
template <class T>
class per_device {
 public:
  template <class Make>
  T get(const torch::Device& device, Make&& make) const {
    std::lock_guard lock(state_->mutex);
    for (const auto& [d, t] : state_->copies)
      if (d == device) return t;
    T t = make();
    state_->copies.emplace_back(device, t);
    return t;
  }

 private:
  struct state {
    std::mutex mutex;
    std::vector<std::pair<torch::Device, T>> copies;
  };
  std::shared_ptr<state> state_ = std::make_shared<state>();
};

}  // namespace detail

/// An 8-bit copy of a weight [rows, cols] by GGUF's Q8_0 rule (blocks of 32 along a row, an fp16
/// scale each): int8 codes [rows, cols] and fp32 scales [rows, cols / 32], on the weight's
/// device. What quantize_head(lm, head_format::q8_0) multiplies the final hidden states with.
/// Immutable: copies of a model share it.
struct q8_weight {
  torch::Tensor codes, scales;
  /// The dense weight it was made from holds the very same values (quant::q8::holds_q8_0_values):
  /// products of several rows then use the dense weight as they would without the copy.
  bool same_values = false;

  /// Q8_0 of `dense` [rows, cols] (cols a multiple of 32, finite values), kept on dense's device;
  /// marked same_values when `dense` holds Q8_0 values already (one host copy of the weight either
  /// way: the check writes the codes it would keep, and only a weight that fails it is quantized
  /// again, whole).
  static std::shared_ptr<const q8_weight> of(const torch::Tensor& dense) {
    return make(dense, /*only_q8_0_values=*/false);
  }

  /// The copy of `of` when `dense` holds Q8_0 values already (quant::q8::quantize_if_q8_0_values:
  /// one pass that checks and quantizes); null otherwise.
  static std::shared_ptr<const q8_weight> of_if_same_values(const torch::Tensor& dense) {
    return make(dense, /*only_q8_0_values=*/true);
  }

 private:
  static std::shared_ptr<q8_weight> make(const torch::Tensor& dense, bool only_q8_0_values) {
    TORCH_CHECK(dense.dim() == 2, "ordo: an 8-bit weight must be a matrix");
    const auto rows = dense.size(0), cols = dense.size(1), per = static_cast<std::int64_t>(quant::q8::block);
    if (cols % per != 0) {  // no whole Q8_0 blocks: holds no Q8_0 values, and cannot be quantized
      if (only_q8_0_values) return nullptr;
      throw std::invalid_argument("ordo: Q8_0 needs rows of a multiple of 32 values; this weight's rows have " +
                                  std::to_string(cols));
    }
    const auto host = dense.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    auto w = std::make_shared<q8_weight>();
    // Uninitialized until quantized into (a head that turns out not to hold Q8_0 values is seen
    // at its first blocks: the untouched pages cost nothing).
    w->codes = torch::empty({rows, cols}, torch::kInt8);
    w->scales = torch::empty({rows, cols / per}, torch::kFloat32);
    const auto c = static_cast<std::size_t>(cols);
    const float* x = host.data_ptr<float>();
    std::int8_t* codes = w->codes.data_ptr<std::int8_t>();
    float* scales = w->scales.data_ptr<float>();
    // The check over LibTorch's threads, in runs of rows, stopping everywhere at the first run
    // that fails; every block's codes depend on its own values only, so the split changes nothing.
    std::atomic<bool> differs{false};
    constexpr std::int64_t run = 64;
    at::parallel_for(0, rows, run, [&](std::int64_t begin, std::int64_t end) {
      for (auto r = begin; r < end && !differs.load(std::memory_order_relaxed); r += run) {
        const auto n = static_cast<std::size_t>(std::min(run, end - r));
        const auto at = static_cast<std::size_t>(r);
        if (!quant::q8::quantize_if_q8_0_values(x + at * c, n, c, codes + at * c, scales + at * (c / quant::q8::block)))
          differs.store(true, std::memory_order_relaxed);
      }
    });
    if (!differs.load()) {
      w->same_values = true;
    } else {
      if (only_q8_0_values) return nullptr;
      quant::q8::quantize_into(x, static_cast<std::size_t>(rows), c, codes, scales);  // errors name the row
    }
    if (!dense.device().is_cpu()) {
      w->codes = w->codes.to(dense.device());
      w->scales = w->scales.to(dense.device());
    }
    return w;
  }

 public:
  /// The values the codes stand for, code * scale (computed in fp32), in `dtype`.
  torch::Tensor dequantize(torch::ScalarType dtype = torch::kFloat32) const {
    const auto rows = codes.size(0), cols = codes.size(1), per = static_cast<std::int64_t>(quant::q8::block);
    return (codes.to(torch::kFloat32).view({rows, cols / per, per}) * scales.unsqueeze(-1)).view({rows, cols}).to(dtype);
  }

  /// x [..., cols] times the weight's transpose: [..., rows] in fp32. One fp32 row on the CPU
  /// goes through ordo's Q8_0 GEMV (one byte per weight read); anything else multiplies the
  /// dequantized values in x's dtype.
  torch::Tensor forward(const torch::Tensor& x) const {
    const auto rows = codes.size(0), cols = codes.size(1);
    auto shape = x.sizes().vec();
    shape.back() = rows;
    if (x.numel() == cols && x.scalar_type() == torch::kFloat32 && x.device().is_cpu() && codes.device().is_cpu() &&
        !x.requires_grad()) {
      const auto row = x.reshape({cols}).contiguous();
      auto y = torch::empty({rows}, torch::kFloat32);
      quant::q8::Options o;
      o.runner = detail::torch_runner();
      quant::q8::gemv(codes.data_ptr<std::int8_t>(), scales.data_ptr<float>(), static_cast<std::size_t>(rows),
                      static_cast<std::size_t>(cols), row.data_ptr<float>(), y.data_ptr<float>(), o);
      return y.view(shape);
    }
    return torch::matmul(x, dequantize(x.scalar_type()).t()).to(torch::kFloat32);
  }
};

/// NF4 weights of a linear layer [out, in], as bitsandbytes stores them, with the per-block
/// scales rebuilt once (double quantization is undone at load, not per call).
struct nf4_weight {
  quant::nf4::Quantized q;
  std::vector<float> scales;  // block_scales(q)
  std::int64_t out_features = 0, in_features = 0;
  torch::ScalarType compute_dtype = torch::kFloat32;

  /// The dense values the NF4 weights stand for, rows [r0, r1), fp32.
  torch::Tensor dequantize_rows(std::int64_t r0, std::int64_t r1) const {
    const auto n = static_cast<std::size_t>((r1 - r0) * in_features);
    const auto first = static_cast<std::size_t>(r0 * in_features);
    auto out = torch::empty({r1 - r0, in_features}, torch::kFloat32);
    TORCH_CHECK(first % q.blocksize == 0, "ordo: NF4 row tiles must start on a block");
    quant::nf4::dequantize_blocks(q.packed.data() + first / 2, scales.data() + first / q.blocksize, n,
                                  out.data_ptr<float>(), detail::nf4_options(q.blocksize));
    return out;
  }
  torch::Tensor dequantize() const { return dequantize_rows(0, out_features); }

  /// What a device holds of the weight: the packed bytes (uint8), the block scales (fp32) and the
  /// 16 codebook values (fp32).
  struct device_tensors {
    torch::Tensor packed, scales, codebook;
  };

  /// The weight's tensors on `device`, copied there on first use and kept (shared by the copies
  /// of a model; the NF4 data is immutable).
  device_tensors tensors_on(const torch::Device& device) const {
    return copies_.get(device, [&] {
      auto to_device = [&](const void* data, std::int64_t n, torch::ScalarType type) {
        return torch::from_blob(const_cast<void*>(data), {n}, type).to(device, /*non_blocking=*/false, /*copy=*/true);
      };
      return device_tensors{
          to_device(q.packed.data(), static_cast<std::int64_t>(q.packed.size()), torch::kUInt8),
          to_device(scales.data(), static_cast<std::int64_t>(scales.size()), torch::kFloat32),
          to_device(quant::nf4::codebook.data(), static_cast<std::int64_t>(quant::nf4::codebook.size()),
                    torch::kFloat32)};
    });
  }

  /// dequantize_rows computed on `device` from the tensors kept there, in `dtype`: with ordo's
  /// CUDA kernel on a CUDA device when it is built in, else with LibTorch operations. Both give
  /// code_value(code) * scale in fp32 (rounded to nearest-even for bf16/fp16), the host path's values.
  torch::Tensor dequantize_rows_on(const torch::Device& device, std::int64_t r0, std::int64_t r1,
                                   torch::ScalarType dtype = torch::kFloat32) const {
    const auto n = (r1 - r0) * in_features, first = r0 * in_features;
    const auto bs = static_cast<std::int64_t>(q.blocksize);
    TORCH_CHECK(first % bs == 0, "ordo: NF4 row tiles must start on a block");
    const auto t = tensors_on(device);
#if defined(ORDO_HAVE_KERNELS) && defined(ORDO_TORCH_CUDA)
    if (device.is_cuda() && (dtype == torch::kFloat32 || dtype == torch::kBFloat16 || dtype == torch::kFloat16)) {
      c10::cuda::CUDAGuard guard(device);
      auto out = torch::empty({r1 - r0, in_features}, torch::TensorOptions().device(device).dtype(dtype));
      const auto kind = dtype == torch::kFloat32    ? ordo::cuda::nf4::Dtype::f32
                        : dtype == torch::kBFloat16 ? ordo::cuda::nf4::Dtype::bf16
                                                    : ordo::cuda::nf4::Dtype::f16;
      ordo::cuda::nf4::dequantize(t.packed.data_ptr<std::uint8_t>() + first / 2, t.scales.data_ptr<float>() + first / bs,
                                  static_cast<std::size_t>(n), q.blocksize, out.data_ptr(), kind,
                                  c10::cuda::getCurrentCUDAStream(device.index()).stream());
      return out;
    }
#endif
    auto bytes = t.packed.narrow(0, first / 2, (n + 1) / 2).to(torch::kLong);
    auto codes = torch::stack({torch::div(bytes, 16, "floor"), torch::remainder(bytes, 16)}, 1).reshape({-1});
    auto values = t.codebook.index_select(0, codes.narrow(0, 0, n));
    const auto blocks = (n + bs - 1) / bs;
    auto per_value = t.scales.narrow(0, first / bs, blocks).repeat_interleave(bs).narrow(0, 0, n);
    return (values * per_value).view({r1 - r0, in_features}).to(dtype);
  }

 private:
  detail::per_device<device_tensors> copies_;
};

namespace detail {

/// y [1, out] = W x for one fp32 row x on a CUDA device, with ordo's NF4 GEMV kernel on the
/// current CUDA stream; undefined when the kernels or a CUDA LibTorch are not built in, or the
/// shape does not suit the kernel (the caller then dequantizes and multiplies).
inline torch::Tensor nf4_cuda_gemv([[maybe_unused]] const nf4_weight& w, [[maybe_unused]] const torch::Tensor& x) {
#if defined(ORDO_HAVE_KERNELS) && defined(ORDO_TORCH_CUDA)
  if (!x.device().is_cuda() || x.size(0) != 1 || w.in_features % static_cast<std::int64_t>(w.q.blocksize) != 0)
    return {};
  c10::cuda::CUDAGuard guard(x.device());
  const auto t = w.tensors_on(x.device());
  auto y = torch::empty({1, w.out_features}, x.options().dtype(torch::kFloat32));
  ordo::cuda::nf4::gemv(t.packed.data_ptr<std::uint8_t>(), t.scales.data_ptr<float>(),
                        static_cast<std::size_t>(w.out_features), static_cast<std::size_t>(w.in_features),
                        w.q.blocksize, x.data_ptr<float>(), y.data_ptr<float>(),
                        c10::cuda::getCurrentCUDAStream(x.device().index()).stream());
  return y;
#else
  return {};
#endif
}

/// NF4 quantization of a weight held on a CUDA device with ordo's CUDA kernels (the exact
/// arithmetic: the host path's bytes and statistics), brought back to the host; nullopt when the
/// weight is not on a CUDA device or the kernels and a CUDA LibTorch are not built in.
inline std::optional<quant::nf4::Quantized> nf4_cuda_quantize([[maybe_unused]] const torch::Tensor& weight,
                                                              [[maybe_unused]] std::size_t blocksize,
                                                              [[maybe_unused]] bool double_quant) {
#if defined(ORDO_HAVE_KERNELS) && defined(ORDO_TORCH_CUDA)
  if (!weight.device().is_cuda()) return std::nullopt;
  const auto device = weight.device();
  c10::cuda::CUDAGuard guard(device);
  const auto stream = c10::cuda::getCurrentCUDAStream(device.index()).stream();
  const auto x = weight.detach().to(torch::kFloat32).contiguous();
  const auto n = static_cast<std::size_t>(x.numel());
  const auto blocks = quant::nf4::block_count(n, blocksize);
  const auto on = [&](std::size_t count, torch::ScalarType type) {
    return torch::empty({static_cast<std::int64_t>(count)}, torch::TensorOptions().device(device).dtype(type));
  };
  const auto host = []<class T>(const torch::Tensor& t, std::vector<T>& out) {  // waits for the stream
    const auto h = t.to(torch::kCPU).contiguous();
    out.assign(h.template data_ptr<T>(), h.template data_ptr<T>() + h.numel());
  };
  auto packed = on(quant::nf4::packed_bytes(n), torch::kUInt8), absmax = on(blocks, torch::kFloat32);
  ordo::cuda::nf4::quantize(x.data_ptr<float>(), ordo::cuda::nf4::Dtype::f32, n, blocksize,
                            packed.data_ptr<std::uint8_t>(), absmax.data_ptr<float>(), stream);
  quant::nf4::Quantized q;
  q.numel = n;
  q.blocksize = blocksize;
  host(packed, q.packed);
  if (!double_quant) {
    host(absmax, q.absmax);
    return q;
  }
  auto offset = on(1, torch::kFloat32), codes = on(blocks, torch::kUInt8);
  auto absmax2 = on(quant::nf4::absmax2_count(blocks), torch::kFloat32);
  auto workspace = on(std::max<std::size_t>(1, ordo::cuda::nf4::quantize_absmax_workspace_bytes(blocks)), torch::kUInt8);
  ordo::cuda::nf4::quantize_absmax(absmax.data_ptr<float>(), blocks, offset.data_ptr<float>(),
                                   codes.data_ptr<std::uint8_t>(), absmax2.data_ptr<float>(), workspace.data_ptr(), stream);
  q.nested = true;
  host(codes, q.absmax_codes);
  host(absmax2, q.absmax2);
  q.offset = offset.to(torch::kCPU).item<float>();
  return q;
#else
  return std::nullopt;
#endif
}

}  // namespace detail

/// A linear layer y = x W^T + b whose weight is dense (a trainable parameter) or NF4 (packed,
/// inference only). Names follow transformers: `weight`, `bias`.
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(std::int64_t in, std::int64_t out, bool with_bias, const build_options& b = {})
      : in_features(in), out_features(out) {
    weight = register_parameter("weight", torch::empty({out, in}, b.tensors()));
    if (b.random) torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
    if (with_bias) bias = register_parameter("bias", torch::zeros({out}, b.tensors()));
  }
  LinearImpl(std::shared_ptr<const nf4_weight> w, torch::Tensor b)
      : in_features(w->in_features), out_features(w->out_features), nf4(std::move(w)) {
    if (b.defined()) bias = register_parameter("bias", b.detach().clone(), /*requires_grad=*/false);
  }

  bool quantized() const { return nf4 != nullptr; }

  /// Whether one fp32 row can go through ordo's NF4 GEMV: the weight is NF4 and its blocks do not
  /// straddle rows (in_features a multiple of the blocksize; otherwise tiles are dequantized).
  bool nf4_gemv_applies() const {
    return nf4 && in_features % static_cast<std::int64_t>(nf4->q.blocksize) == 0;
  }
  /// y [out_features] = W x for one fp32 row x [in_features], no bias (nf4_gemv_applies()).
  void nf4_gemv(const float* x, float* y) const {
    auto o = detail::nf4_options(nf4->q.blocksize);
    o.gemv = gemv_arithmetic;
    quant::nf4::gemv(nf4->q.packed.data(), nf4->scales.data(), static_cast<std::size_t>(out_features),
                     static_cast<std::size_t>(in_features), x, y, o);
  }
  /// The CPU GEMV's arithmetic for one row (exact fp32 unless set_nf4_gemv chose int16).
  quant::nf4::Gemv gemv_arithmetic = quant::nf4::Gemv::exact;

  /// Under autocast in `dtype`, multiply with a copy of the weight cast once (detail::autocast_copy);
  /// nullopt drops it. CausalLM::keep_autocast_copies sets it for every linear layer.
  void keep_autocast_copy(std::optional<torch::ScalarType> dtype) { autocast_copy_.ask(dtype); }
  /// The copy made so far (undefined: none yet, or none asked for).
  const torch::Tensor& autocast_copy() const { return autocast_copy_.copy; }

  torch::Tensor forward(const torch::Tensor& x) {
    if (!nf4) {
      if (auto y = detail::few_rows_product(x, weight); y.defined()) return bias.defined() ? y + bias : y;
      return torch::nn::functional::linear(x, autocast_copy_.choose(weight), bias);
    }
    auto flat = x.reshape({-1, in_features}).to(torch::kFloat32).contiguous();
    const auto rows = flat.size(0);
    torch::Tensor y;
    if (!x.device().is_cpu()) {
      // On a device the NF4 bytes are kept there (copied once). One row goes through ordo's CUDA
      // GEMV when it is built in; more rows multiply the weight dequantized there: on CUDA in the
      // input's dtype by one kernel, elsewhere a tile of rows at a time by LibTorch operations.
      y = detail::nf4_cuda_gemv(*nf4, flat);
      if (!y.defined() && x.device().is_cuda()) {
        const auto dtype = x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kFloat16
                               ? x.scalar_type() : torch::kFloat32;
        y = torch::matmul(flat.to(dtype), nf4->dequantize_rows_on(x.device(), 0, out_features, dtype).t())
                .to(torch::kFloat32);
      } else if (!y.defined()) {
        const std::int64_t tile = std::max<std::int64_t>(1, (1 << 24) / in_features);
        std::vector<torch::Tensor> parts;
        for (std::int64_t r = 0; r < out_features; r += tile)
          parts.push_back(
              torch::matmul(flat, nf4->dequantize_rows_on(x.device(), r, std::min(r + tile, out_features)).t()));
        y = torch::cat(parts, 1);
      }
    } else if (rows == 1 && nf4_gemv_applies()) {
      y = torch::empty({1, out_features}, torch::kFloat32);  // batch 1: fused NF4 GEMV
      nf4_gemv(flat.data_ptr<float>(), y.data_ptr<float>());
    } else if (rows <= detail::few_rows_limit && nf4_gemv_applies() &&
               !(torch::GradMode::is_enabled() && flat.requires_grad())) {
      // A few rows (a batch of sequences decoding): each weight row dequantized once into the
      // cache and multiplied with every row there; the floats of the tiles below, without
      // writing the tiles to memory and reading them back.
      y = torch::empty({rows, out_features}, torch::kFloat32);
      auto o = detail::nf4_options(nf4->q.blocksize);
      quant::nf4::gemv_batch(nf4->q.packed.data(), nf4->scales.data(), static_cast<std::size_t>(out_features),
                             static_cast<std::size_t>(in_features), flat.data_ptr<float>(),
                             static_cast<std::size_t>(rows), static_cast<std::size_t>(in_features),
                             y.data_ptr<float>(), static_cast<std::size_t>(out_features), o);
    } else {  // dequantize a tile of rows at a time, bounding the dense copy
      const std::int64_t tile = std::max<std::int64_t>(1, (1 << 20) / in_features);
      std::vector<torch::Tensor> parts;
      for (std::int64_t r = 0; r < out_features; r += tile) {
        const auto w = nf4->dequantize_rows(r, std::min(r + tile, out_features));
        auto part = detail::few_rows_product(flat, w);  // a few rows: the tile streamed once
        parts.push_back(part.defined() ? part : torch::matmul(flat, w.t()));
      }
      y = torch::cat(parts, 1);
    }
    if (bias.defined()) y = y + bias.to(y.device(), torch::kFloat32);
    auto shape = x.sizes().vec();
    shape.back() = out_features;
    return y.view(shape).to(x.scalar_type());
  }

  std::int64_t in_features, out_features;
  torch::Tensor weight, bias;
  std::shared_ptr<const nf4_weight> nf4;

 private:
  detail::autocast_copy autocast_copy_;
};
TORCH_MODULE(Linear);

class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(std::int64_t dim, double eps, const build_options& b = {}) : eps_(eps) {
    weight = register_parameter("weight", torch::ones({dim}, b.tensors()));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto h = x.to(torch::kFloat32);
    h = h * torch::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps_);
    return weight * h.to(x.scalar_type());
  }
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const decoder_config& c, const build_options& b = {})
      : heads_(c.num_heads), kv_heads_(c.num_kv_heads), head_dim_(c.head_dim) {
    auto linear = [&](std::int64_t in, std::int64_t out, bool bias) { return Linear(in, out, bias, b); };
    q_proj = register_module("q_proj", linear(c.hidden_size, heads_ * head_dim_, c.attention_bias));
    k_proj = register_module("k_proj", linear(c.hidden_size, kv_heads_ * head_dim_, c.attention_bias));
    v_proj = register_module("v_proj", linear(c.hidden_size, kv_heads_ * head_dim_, c.attention_bias));
    o_proj = register_module("o_proj", linear(heads_ * head_dim_, c.hidden_size, false));
  }

  // x [B, T, H]; cos/sin [T, head_dim]; bias [B, 1, T, past + T] additive (0 or -inf-like), or
  // undefined for causal attention without padding (the T queries are the last T positions).
  // cache: this layer's part of a kv_cache the new positions are appended to (or nullptr).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& bias, kv_cache* cache = nullptr, std::size_t layer = 0) {
    const auto B = x.size(0), T = x.size(1);
    auto q = q_proj(x).view({B, T, heads_, head_dim_}).transpose(1, 2);
    auto k = k_proj(x).view({B, T, kv_heads_, head_dim_}).transpose(1, 2);
    auto v = v_proj(x).view({B, T, kv_heads_, head_dim_}).transpose(1, 2);
    q = detail::rotary(q, cos, sin);
    k = detail::rotary(k, cos, sin);
    if (cache) {
      auto &past_k = cache->keys.at(layer), &past_v = cache->values.at(layer);
      if (torch::GradMode::is_enabled() && (k.requires_grad() || v.requires_grad())) {
        if (past_k.defined()) {  // autograd records the concatenation (no stores written in place)
          k = torch::cat({past_k, k}, 2);
          v = torch::cat({past_v, v}, 2);
        }
        past_k = k;
        past_v = v;
      } else {
        const bool first = !past_k.defined();
        detail::append_positions(past_k, cache->key_store.at(layer), k, cache->reserve);
        detail::append_positions(past_v, cache->value_store.at(layer), v, cache->reserve);
        if (!first) {  // attend to every position (the first forward attends to its own k, v)
          k = past_k;
          v = past_v;
        }
      }
    }
    const auto S = k.size(2);
    const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim_));
    const bool causal = !bias.defined() && T > 1;
    if (causal && q.scalar_type() == torch::kFloat32 && q.device().is_cpu() && !compat::autocast_enabled(torch::kCPU))
      return o_proj(detail::causal_attention(q, k, v, scale));
    const auto mask = causal ? detail::causal_bias(T, S - T, x.options()).view({1, 1, T, S}) : bias;
    return o_proj(detail::grouped_attention(q, k, v, mask));
  }

  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  std::int64_t heads_, kv_heads_, head_dim_;
};
TORCH_MODULE(Attention);

class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(std::int64_t hidden, std::int64_t intermediate, const build_options& b = {}, bool with_bias = false) {
    auto linear = [&](std::int64_t in, std::int64_t out) { return Linear(in, out, with_bias, b); };
    gate_proj = register_module("gate_proj", linear(hidden, intermediate));
    up_proj = register_module("up_proj", linear(hidden, intermediate));
    down_proj = register_module("down_proj", linear(intermediate, hidden));
  }
  torch::Tensor forward(const torch::Tensor& x) { return down_proj(torch::silu(gate_proj(x)) * up_proj(x)); }
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MLP);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const decoder_config& c, std::int64_t layer, const build_options& b = {}) {
    self_attn = register_module("self_attn", Attention(c, b));
    mlp = register_module("mlp", MLP(c.hidden_size, c.intermediate_sizes.at(layer), b, c.mlp_bias));
    input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps, b));
    post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps, b));
  }
  torch::Tensor forward(torch::Tensor x, const torch::Tensor& cos, const torch::Tensor& sin, const torch::Tensor& bias,
                        kv_cache* cache = nullptr, std::size_t layer = 0) {
    x = x + self_attn(input_layernorm(x), cos, sin, bias, cache, layer);
    return x + mlp(post_attention_layernorm(x));
  }
  Attention self_attn{nullptr};
  MLP mlp{nullptr};
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(DecoderLayer);

/// The transformer body ("model." in transformers' names).
class DecoderBodyImpl : public torch::nn::Module {
 public:
  explicit DecoderBodyImpl(const decoder_config& c, const build_options& b = {}) {
    // torch::nn::Embedding draws its weight on the CPU in fp32 (N(0, 1)); elsewhere, or for a
    // loader, the weight is made where it belongs and drawn (the same law) only when asked.
    torch::nn::EmbeddingOptions e(c.vocab_size, c.hidden_size);
    if (!b.device.is_cpu() || b.dtype != torch::kFloat32 || !b.random) {
      auto w = torch::empty({c.vocab_size, c.hidden_size}, b.tensors());
      if (b.random) torch::nn::init::normal_(w);
      e._weight(w);
    }
    embed_tokens = register_module("embed_tokens", torch::nn::Embedding(e));
    layers = register_module("layers", torch::nn::ModuleList());
    for (std::int64_t i = 0; i < c.num_layers; ++i) layers->push_back(DecoderLayer(c, i, b));
    norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps, b));
  }
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
};
TORCH_MODULE(DecoderBody);

/// A causal LM: body + LM head. `forward(ids, mask, cache)` gives logits [B, T, vocab] in fp32.
class CausalLMImpl : public torch::nn::Module {
 public:
  explicit CausalLMImpl(decoder_config c, const build_options& b = {}) : config_(std::move(c)) {
    config_.validate("ordo::model::CausalLM");
    model = register_module("model", DecoderBody(config_, b));
    if (!config_.tie_word_embeddings) {
      lm_head = register_module("lm_head", Linear(config_.hidden_size, config_.vocab_size, false, b));
    }
    inv_freq_ = detail::rope_inverse_frequencies(config_);  // fp32, not a parameter
  }

  const decoder_config& config() const { return config_; }

  /// Where the parameters are (all of a model's dense parameters live on one device).
  torch::Device device() const { return model->embed_tokens->weight.device(); }
  /// The dtype of the dense parameters (the embeddings').
  torch::ScalarType dtype() const { return model->embed_tokens->weight.scalar_type(); }

  /// input_ids [B, T] (int64); attention_mask [B, past + T] of 1 (real) / 0 (padding), or
  /// undefined for no padding; cache: extended in place when given. Positions count from the
  /// cache length. Logits [B, T, vocab] in fp32: head(hidden(...)).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        kv_cache* cache = nullptr) {
    return head(hidden(input_ids, attention_mask, cache));
  }

  /// The LM head on final hidden states [..., hidden]: logits [..., vocab] in fp32.
  torch::Tensor head(const torch::Tensor& x) {
    if (nf4_head) return nf4_head(x).to(torch::kFloat32);  // quantize_head's opt-in NF4 copy
    if (q8_head && (!q8_head->same_values || x.numel() == q8_head->codes.size(1)))
      return q8_head->forward(x);  // or its 8-bit copy (when its values are the dense head's, for one row only)
    if (lm_head) return lm_head(x).to(torch::kFloat32);     // dense or NF4
    const auto& w = model->embed_tokens->weight;
    if (auto y = detail::few_rows_product(x, w); y.defined()) return y;
    return torch::matmul(x, tied_head_copy_.choose(w).t()).to(torch::kFloat32);
  }

  /// Under autocast in `dtype` (bf16), multiply with copies of the dense weights (every linear
  /// layer's and a tied head's) cast once, at the first such forward and again for a weight that
  /// has changed, instead of on every forward pass: for a frozen model run many times, as a KD
  /// teacher (stages/distill.hpp). The same values as autocast's own casts, so the same results;
  /// the copies add half the fp32 weights' memory (bf16). Weights that record gradients are
  /// never replaced. nullopt: no copies (drops them).
  void keep_autocast_copies(std::optional<torch::ScalarType> dtype) {
    for (const auto& m : modules(/*include_self=*/false))
      if (auto* linear = m->as<LinearImpl>()) linear->keep_autocast_copy(dtype);
    tied_head_copy_.ask(dtype);
  }

  /// The head's dense weight [vocab, hidden] (the embeddings' when tied); undefined when the head
  /// is NF4.
  torch::Tensor head_weight() const {
    if (!lm_head) return model->embed_tokens->weight;
    return lm_head->quantized() ? torch::Tensor() : lm_head->weight;
  }

  /// Whether one-token steps with a cache (decoding, up to detail::few_rows_limit rows, fp32 on
  /// the CPU, no gradients) take the fused step (the default) or the general path, as every
  /// other call does. The two agree up to fp32 rounding; the switch is for comparing them.
  void set_fused_decoding(bool on) { fused_decoding_ = on; }
  bool fused_decoding() const { return fused_decoding_; }

  /// The final hidden states [B, T, hidden] (after the last norm), in the model's dtype: what
  /// head() turns into logits. Arguments as forward's.
  torch::Tensor hidden(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                       kv_cache* cache = nullptr) {
    TORCH_CHECK(input_ids.dim() == 2, "ordo::model::CausalLM: input_ids must be [batch, tokens]");
    const auto B = input_ids.size(0), T = input_ids.size(1);
    if (T == 1 && cache && B <= detail::few_rows_limit && one_token_step_applies())
      return hidden_one_token(input_ids, attention_mask, *cache);
    const std::int64_t past = cache ? cache->length() : 0;
    auto x = model->embed_tokens(input_ids.to(device()));  // ids may come from the host
    const auto dtype = x.scalar_type();

    const auto [cos, sin] = rotary_tables(past, T, x.device(), dtype);

    // With padding, an additive mask [B, 1, T, past + T]: causal, and padded keys masked.
    // Without, none: the layers attend causally on their own.
    torch::Tensor bias;
    if (attention_mask.defined()) {
      TORCH_CHECK(attention_mask.sizes() == torch::IntArrayRef({B, past + T}),
                  "ordo::model::CausalLM: attention_mask must be [batch, past + tokens]");
      auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(x.device());
      bias = detail::causal_bias(T, past, opts).view({1, 1, T, past + T}).expand({B, 1, T, past + T});
      auto pad = (attention_mask.to(x.device()) == 0).view({B, 1, 1, past + T});
      bias = bias.masked_fill(pad, detail::masked_score);
    }
    if (cache) cache->prepare(model->layers->size());
    for (std::size_t i = 0; i < model->layers->size(); ++i)
      x = model->layers->ptr<DecoderLayerImpl>(i)->forward(x, cos, sin, bias, cache, i);
    return model->norm(x);
  }

  /// RoPE's cos and sin [T, head_dim] for positions past..past+T-1, in `dtype` on `device`.
  /// Positions are made where the model is and the inverse frequencies kept there: no
  /// host-to-device copy (which waits for the device) in each decoding step.
  std::pair<torch::Tensor, torch::Tensor> rotary_tables(std::int64_t past, std::int64_t T, const torch::Device& device,
                                                        torch::ScalarType dtype) {
    auto positions = torch::arange(past, past + T, torch::TensorOptions().dtype(torch::kFloat32).device(device));
    auto freqs = torch::outer(positions, inv_freq_on(device));
    auto emb = torch::cat({freqs, freqs}, -1);
    return {emb.cos().to(dtype), emb.sin().to(dtype)};
  }

  Linear lm_head{nullptr};  // null when tied to the embeddings
  DecoderBody model{nullptr};
  /// Set by quantize_head (ordo/model/transform.hpp): an NF4 or an 8-bit copy of the head's
  /// weight that head() multiplies with instead (not registered modules: not saved, not trained).
  Linear nf4_head{nullptr};
  std::shared_ptr<const q8_weight> q8_head;

 private:
  detail::autocast_copy tied_head_copy_;  // keep_autocast_copies' copy of a tied head
  /// Decoding one token per row with a cache (one row, or a batch of up to few_rows_limit rows
  /// with or without a padding mask), fp32 on the CPU, without gradients: the step that
  /// dominates generation, where a LibTorch operator per small vector costs more than the
  /// arithmetic. hidden_one_token runs it with few operators: norms, RoPE, SiLU and residuals
  /// as loops over each row, the linears as one product each (ordo's fp32 GEMV or its batched
  /// form for dense weights, which gives each row the floats it gets alone; for NF4, its GEMV
  /// for one row, the tiled product for several: the values forward() gives), attention per row
  /// as loops over the cached keys and values with LibTorch's softmax (padded keys scored as the
  /// general path's mask scores them), and keys and values appended in place. Results equal the
  /// general path's up to fp32 rounding (model.decoder compares them).
  bool one_token_step_applies() const {
    return fused_decoding_ && !torch::GradMode::is_enabled() && device().is_cpu() && dtype() == torch::kFloat32 &&
           !compat::autocast_enabled(torch::kCPU);
  }

  /// y [B, out] = x W^T + b for fp32 rows x [B, in] (contiguous), into a new tensor: one row of
  /// NF4 weights through the NF4 GEMV, anything else through forward().
  static torch::Tensor linear_row(LinearImpl& l, const torch::Tensor& x) {
    if (x.size(0) != 1 || !l.nf4_gemv_applies()) return l.forward(x).contiguous();
    auto y = torch::empty({1, l.out_features}, torch::kFloat32);
    l.nf4_gemv(x.data_ptr<float>(), y.data_ptr<float>());
    if (l.bias.defined()) y.add_(l.bias);
    return y;
  }

  /// linear_row of several linears that multiply the same row x (a layer's q, k and v; its gate
  /// and up): when all are NF4 with one blocksize and arithmetic, one NF4 GEMV loop over the rows
  /// of all of them (quant::nf4::gemv_shared: the same values, one wait for the threads instead
  /// of one per linear), else linear_row each.
  template <std::size_t N>
  static std::array<torch::Tensor, N> linear_rows(const std::array<LinearImpl*, N>& ls, const torch::Tensor& x) {
    std::array<torch::Tensor, N> out;
    bool together = x.size(0) == 1;
    for (const LinearImpl* l : ls) together = together && l->nf4_gemv_applies();
    for (const LinearImpl* l : ls)
      together = together && l->nf4->q.blocksize == ls[0]->nf4->q.blocksize &&
                 l->gemv_arithmetic == ls[0]->gemv_arithmetic && l->in_features == ls[0]->in_features;
    if (!together) {
      for (std::size_t i = 0; i < N; ++i) out[i] = linear_row(*ls[i], x);
      return out;
    }
    std::array<quant::nf4::gemv_part, N> parts;
    for (std::size_t i = 0; i < N; ++i) {
      out[i] = torch::empty({1, ls[i]->out_features}, torch::kFloat32);
      parts[i] = {ls[i]->nf4->q.packed.data(), ls[i]->nf4->scales.data(),
                  static_cast<std::size_t>(ls[i]->out_features), out[i].template data_ptr<float>()};
    }
    auto o = detail::nf4_options(ls[0]->nf4->q.blocksize);
    o.gemv = ls[0]->gemv_arithmetic;
    quant::nf4::gemv_shared(parts, static_cast<std::size_t>(ls[0]->in_features), x.data_ptr<float>(), o);
    for (std::size_t i = 0; i < N; ++i)
      if (ls[i]->bias.defined()) out[i].add_(ls[i]->bias);
    return out;
  }

  /// out[i] = x[i] * rsqrt(mean(x^2) + eps) * w[i], as RMSNormImpl computes it in fp32.
  static void rms_norm_row(const float* x, const float* w, float* out, std::int64_t n, double eps) {
    float sum = 0.0f;
    for (std::int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
    const float r = 1.0f / std::sqrt(sum / static_cast<float>(n) + static_cast<float>(eps));
    for (std::int64_t i = 0; i < n; ++i) out[i] = w[i] * (x[i] * r);
  }

  /// Rotates each head of `v` [heads, D] in place: v * cos + rotate_half(v) * sin, with cos/sin
  /// [D / 2] (the two halves share them).
  static void rope_rows(float* v, std::int64_t heads, std::int64_t D, const float* cos, const float* sin) {
    const auto half = D / 2;
    for (std::int64_t h = 0; h < heads; ++h) {
      float* r = v + h * D;
      for (std::int64_t i = 0; i < half; ++i) {
        const float a = r[i], b = r[i + half];
        r[i] = a * cos[i] - b * sin[i];
        r[i + half] = b * cos[i] + a * sin[i];
      }
    }
  }

  /// Appends one position's keys (or values) rows [B, kv_heads * D] at position `past` of a
  /// layer's cache, in its store (detail::make_room, as the general path appends); `view` becomes
  /// the cache's [B, kv_heads, past + 1, D]. Returns the store's data, whose rows of batch row b
  /// and KV head g start at (b * kv_heads + g) * capacity * D.
  static const float* append_rows(torch::Tensor& view, torch::Tensor& store, const float* rows, std::int64_t B,
                                  std::int64_t kv_heads, std::int64_t D, std::int64_t past, std::int64_t reserve) {
    detail::make_room(view, store, past, 1, B, kv_heads, D, torch::TensorOptions(torch::kFloat32), reserve);
    const auto capacity = store.size(2);
    float* data = store.data_ptr<float>();
    for (std::int64_t g = 0; g < B * kv_heads; ++g)
      std::copy(rows + g * D, rows + (g + 1) * D, data + (g * capacity + past) * D);
    view = store.narrow(2, 0, past + 1);
    return data;
  }

  /// Attention of one query position: for each KV head g, its `groups` query heads q [heads, D]
  /// score the S cached keys (scale * q.k), softmax over them, and sum the values into out
  /// [heads, D] (zeros on entry). Keys and values are rows of the stores (capacity rows per KV
  /// head). `valid` (or nullptr: all keys): the row's attention mask, 0 for a padded key, which
  /// scores detail::masked_score as in the general path (its weight is exactly 0). The products
  /// run on 4-float vectors; the softmax is LibTorch's. The threads split the scores by (KV head,
  /// key); the sums are detail::attention_value_sums (each value summed over the rows in order).
  static void attend_one(const float* q, const float* keys, const float* values, std::int64_t capacity,
                         std::int64_t S, std::int64_t heads, std::int64_t kv_heads, std::int64_t D, float scale,
                         const std::int64_t* valid, float* op) {
    // 4-float vectors (SSE, the x86-64 baseline), two accumulators per dot product.
    using f4 = float __attribute__((vector_size(16)));
    const auto load = [](f4& v, const float* p) { std::memcpy(&v, p, sizeof v); };
    const std::int64_t groups = heads / kv_heads, vec = D - D % 8;
    auto scores = torch::empty({heads, S}, torch::kFloat32);
    float* sp = scores.data_ptr<float>();
    // Units of work: a (KV head, key) pair scores `groups` heads (groups * D multiply-adds), a
    // query head sums S rows of D. Threads start once a share is ~32 K multiply-adds.
    constexpr std::int64_t work_per_thread = 1 << 15;
    at::parallel_for(0, kv_heads * S, std::max<std::int64_t>(1, work_per_thread / (groups * D)),
                     [&](std::int64_t u0, std::int64_t u1) {
      for (std::int64_t u = u0; u < u1; ++u) {
        const std::int64_t g = u / S, s = u % S;
        const float* k = keys + (g * capacity + s) * D;
        for (std::int64_t j = 0; j < groups; ++j) {
          const float* qh = q + (g * groups + j) * D;
          f4 a0 = {}, a1 = {}, x0, x1, y0, y1;
          std::int64_t d = 0;
          for (; d < vec; d += 8) {
            load(x0, qh + d), load(y0, k + d), load(x1, qh + d + 4), load(y1, k + d + 4);
            a0 += x0 * y0;
            a1 += x1 * y1;
          }
          const f4 a = a0 + a1;
          float dot = (a[0] + a[1]) + (a[2] + a[3]);
          for (; d < D; ++d) dot += qh[d] * k[d];
          sp[(g * groups + j) * S + s] = valid && valid[s] == 0 ? detail::masked_score : dot * scale;
        }
      }
    });
    const auto probs = torch::softmax(scores, -1);
    detail::attention_value_sums(probs.data_ptr<float>(), values, capacity, S, heads, kv_heads, D, op);
  }

  torch::Tensor hidden_one_token(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                 kv_cache& cache) {
    const auto& c = config_;
    const auto layers = static_cast<std::size_t>(c.num_layers);
    cache.prepare(layers);
    const std::int64_t B = input_ids.size(0), past = cache.length(), H = c.hidden_size, D = c.head_dim,
                       heads = c.num_heads, kv_heads = c.num_kv_heads;
    TORCH_CHECK(past == 0 || cache.keys[0].size(0) == B, "ordo::model::CausalLM: a cache of ", cache.keys[0].size(0),
                " rows given ", B, " rows of tokens");
    torch::Tensor mask;  // [B, past + 1] int64 on the host, or undefined: no padding
    if (attention_mask.defined()) {
      TORCH_CHECK(attention_mask.sizes() == torch::IntArrayRef({B, past + 1}),
                  "ordo::model::CausalLM: attention_mask must be [batch, past + tokens]");
      mask = attention_mask.to(torch::kCPU, torch::kLong).contiguous();
    }
    const auto ids = input_ids.reshape({B}).to(torch::kCPU, torch::kLong).contiguous();
    for (std::int64_t b = 0; b < B; ++b) {
      const auto id = ids.data_ptr<std::int64_t>()[b];
      TORCH_CHECK(id >= 0 && id < c.vocab_size, "ordo::model::CausalLM: token id ", id, " is outside the vocabulary");
    }
    auto x = model->embed_tokens->weight.index_select(0, ids);  // [B, H], a new tensor
    // RoPE at position `past` (every row's: padding sits at the left), as the general path forms
    // it: angle = position * inverse frequency.
    auto angle = inv_freq_ * static_cast<float>(past);
    const auto cos = angle.cos(), sin = angle.sin();
    const auto scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
    auto h = torch::empty({B, H}, torch::kFloat32);
    float* xp = x.data_ptr<float>();
    float* hp = h.data_ptr<float>();
    const auto norm_rows = [&](const torch::Tensor& weight) {
      for (std::int64_t b = 0; b < B; ++b) rms_norm_row(xp + b * H, weight.data_ptr<float>(), hp + b * H, H, c.rms_norm_eps);
    };
    for (std::size_t i = 0; i < layers; ++i) {
      auto& layer = *model->layers->ptr<DecoderLayerImpl>(i);
      auto& attn = *layer.self_attn;
      norm_rows(layer.input_layernorm->weight);
      auto [q, k, v] = linear_rows<3>({attn.q_proj.get(), attn.k_proj.get(), attn.v_proj.get()}, h);
      for (std::int64_t b = 0; b < B; ++b) {
        rope_rows(q.data_ptr<float>() + b * heads * D, heads, D, cos.data_ptr<float>(), sin.data_ptr<float>());
        rope_rows(k.data_ptr<float>() + b * kv_heads * D, kv_heads, D, cos.data_ptr<float>(), sin.data_ptr<float>());
      }
      const float* keys = append_rows(cache.keys[i], cache.key_store[i], k.data_ptr<float>(), B, kv_heads, D, past, cache.reserve);
      const float* values =
          append_rows(cache.values[i], cache.value_store[i], v.data_ptr<float>(), B, kv_heads, D, past, cache.reserve);
      TORCH_CHECK(cache.key_store[i].size(2) == cache.value_store[i].size(2), "ordo: KV stores out of step");
      const auto capacity = cache.key_store[i].size(2);
      auto o = torch::zeros({B, heads * D}, torch::kFloat32);
      for (std::int64_t b = 0; b < B; ++b)
        attend_one(q.data_ptr<float>() + b * heads * D, keys + b * kv_heads * capacity * D,
                   values + b * kv_heads * capacity * D, capacity, past + 1, heads, kv_heads, D, scale,
                   mask.defined() ? mask.data_ptr<std::int64_t>() + b * (past + 1) : nullptr,
                   o.data_ptr<float>() + b * heads * D);
      x.add_(linear_row(*attn.o_proj, o));
      norm_rows(layer.post_attention_layernorm->weight);
      auto& mlp = *layer.mlp;
      auto [g, u] = linear_rows<2>({mlp.gate_proj.get(), mlp.up_proj.get()}, h);
      float* gp = g.data_ptr<float>();
      const float* up = u.data_ptr<float>();
      for (std::int64_t j = 0, n = g.numel(); j < n; ++j) gp[j] = gp[j] / (1.0f + std::exp(-gp[j])) * up[j];
      x.add_(linear_row(*mlp.down_proj, g));
    }
    norm_rows(model->norm->weight);
    return h.view({B, 1, H});
  }

  /// The RoPE inverse frequencies on `device`, copied there once (the host tensor is the master).
  torch::Tensor inv_freq_on(const torch::Device& device) {
    if (device.is_cpu()) return inv_freq_;
    return inv_freq_copies_.get(device, [&] { return inv_freq_.to(device); });
  }

  decoder_config config_;
  bool fused_decoding_ = true;
  torch::Tensor inv_freq_;  // fp32 on the host
  detail::per_device<torch::Tensor> inv_freq_copies_;
};
TORCH_MODULE(CausalLM);

}  // namespace ordo::model
