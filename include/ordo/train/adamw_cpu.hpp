// ordo/train/adamw_cpu.hpp — one AdamW update of fp32 parameters in a single pass over memory,
// without LibTorch: per element, what torch::optim::AdamW's eight operators compute (with the
// gradient clipping's scale folded in), rounded exactly as they round, so that the parameters
// and moments come out bit for bit the same.
//
//   ordo::train::adamw_cpu::update(p, g, m, v, n, coefficients, rounding);
//
// Why: LibTorch's AdamW step reads and writes the parameters and the two moments in eight
// separate passes (mul_, add_, mul_, addcmul_, sqrt, div, add_, addcdiv_) plus one for the
// clipping's mul_, about 11 GB of memory traffic per step for SmolLM2-135M, where one pass
// reads p, g, m, v and writes p, m, v (3.8 GB). The arithmetic is elementwise and every
// operation is correctly rounded, so the fused pass can repeat LibTorch's roundings exactly:
//
//   g'  = g * grad_scale                       (clip_grad_norm_'s mul_; 1 when not clipping)
//   p'  = p * decay                            (decoupled weight decay, 1 - lr * wd)
//   m'  = (m * beta1) + g' * (1 - beta1)        (mul_, then add_ with alpha)
//   v'  = (v * beta2) + ((1 - beta2) * g') * g' (mul_, then addcmul_)
//   d   = sqrt(v') / sqrt(1 - beta2^t) + eps   (sqrt, div, add_)
//   p'' = p' + ((-lr / (1 - beta1^t)) * m') / d (addcdiv_)
//
// Two sums may be fused multiply-adds in LibTorch's own build (ATen's vectorized add_ with
// alpha is an FMA; a compiler may contract addcmul_'s last add) and a division by a scalar may
// be a product with its reciprocal: `Rounding` says which, and ordo/train/fused_adamw.hpp finds
// out by running LibTorch's step on probe values at start-up. Every other operation is a
// single IEEE operation; nothing here lets the compiler fuse or reorder them (fp-contract off).
// The AVX-512, AVX2 and portable paths give the same bits.
#pragma once

#include <algorithm>  // std::copy
#include <cmath>      // std::sqrt, std::fma
#include <cstddef>    // std::size_t

#include <ordo/quant/cpu_features.hpp>  // Isa, resolve_isa, ORDO_NF4_HAVE_X86, target attributes

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
#endif
#if defined(__clang__)
#define ORDO_ADAMW_EXACT _Pragma("clang fp contract(off)")
#else
#define ORDO_ADAMW_EXACT
#endif

namespace ordo::train::adamw_cpu {

using quant::nf4::Isa;

/// The scalars of one parameter's update, each already rounded to fp32 as LibTorch rounds a
/// Scalar argument (computed in double, then converted).
struct Coefficients {
  float grad_scale = 1;  ///< the gradient clipping's factor (1: no clipping)
  float decay = 1;       ///< 1 - lr * weight_decay (1: no decay)
  float beta1 = 0.9f, one_minus_beta1 = 0.1f;
  float beta2 = 0.999f, one_minus_beta2 = 0.001f;
  float bias2_sqrt = 1;  ///< sqrt(1 - beta2^t)
  float eps = 1e-8f;
  float neg_step = 0;    ///< -lr / (1 - beta1^t)
};

/// How the LibTorch build at hand rounds the three places where builds differ.
struct Rounding {
  bool first_moment_fma = true;       ///< m*beta1 + g*(1-beta1) rounded once (ATen's vectorized add_)
  bool second_moment_fma = false;     ///< v*beta2 + ((1-beta2)*g)*g with the last add fused
  bool divide_by_reciprocal = false;  ///< sqrt(v') * (1 / bias2_sqrt) instead of a division
  friend bool operator==(const Rounding&, const Rounding&) = default;
};

/// Square roots of n values in place, as a library computes them (LibTorch built with MKL takes
/// them from MKL's vector math, which is not always correctly rounded).
using sqrt_fn = void (*)(float* values, std::size_t n);

namespace detail {

/// Elements per block: the moments of a block are written, then read back for the update while
/// they are still in the core's cache (L1); a library's sqrt takes larger blocks (L2), so that
/// its cost per call is spread over more values.
inline constexpr std::size_t block = 2048, library_block = 16384;

// Phase 1 of a block: the clipped gradient and the two moments, stored.
template <bool FmaM, bool FmaV>
inline void moments_portable(const float* g, float* m, float* v, std::size_t n, const Coefficients& c) {
  ORDO_ADAMW_EXACT
  for (std::size_t i = 0; i < n; ++i) {
    const float gi = g[i] * c.grad_scale;
    const float mb = m[i] * c.beta1;
    m[i] = FmaM ? std::fma(gi, c.one_minus_beta1, mb) : mb + gi * c.one_minus_beta1;
    const float vb = v[i] * c.beta2;
    const float t = c.one_minus_beta2 * gi;
    v[i] = FmaV ? std::fma(t, gi, vb) : vb + t * gi;
  }
}

// Phase 2: the parameters from the new moments; `root` holds sqrt(v) when given (LibTorch's own
// sqrt), else the square roots are taken here (IEEE, correctly rounded).
template <bool Recip>
inline void params_portable(float* p, const float* m, const float* v, const float* root, std::size_t n,
                            const Coefficients& c) {
  ORDO_ADAMW_EXACT
  const float recip = 1.0f / c.bias2_sqrt;
  for (std::size_t i = 0; i < n; ++i) {
    const float r = root ? root[i] : std::sqrt(v[i]);
    const float d = (Recip ? r * recip : r / c.bias2_sqrt) + c.eps;
    const float pd = p[i] * c.decay;
    p[i] = pd + (c.neg_step * m[i]) / d;
  }
}

#if ORDO_NF4_HAVE_X86
template <bool FmaM, bool FmaV>
ORDO_NF4_AVX2 inline void moments_avx2(const float* g, float* m, float* v, std::size_t n, const Coefficients& c) {
  ORDO_ADAMW_EXACT
  const __m256 gs = _mm256_set1_ps(c.grad_scale), b1 = _mm256_set1_ps(c.beta1), a1 = _mm256_set1_ps(c.one_minus_beta1),
               b2 = _mm256_set1_ps(c.beta2), a2 = _mm256_set1_ps(c.one_minus_beta2);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), gs);
    const __m256 mb = _mm256_mul_ps(_mm256_loadu_ps(m + i), b1);
    _mm256_storeu_ps(m + i, FmaM ? _mm256_fmadd_ps(gi, a1, mb) : _mm256_add_ps(mb, _mm256_mul_ps(gi, a1)));
    const __m256 vb = _mm256_mul_ps(_mm256_loadu_ps(v + i), b2);
    const __m256 t = _mm256_mul_ps(a2, gi);
    _mm256_storeu_ps(v + i, FmaV ? _mm256_fmadd_ps(t, gi, vb) : _mm256_add_ps(vb, _mm256_mul_ps(t, gi)));
  }
  moments_portable<FmaM, FmaV>(g + i, m + i, v + i, n - i, c);
}

template <bool Recip>
ORDO_NF4_AVX2 inline void params_avx2(float* p, const float* m, const float* v, const float* root, std::size_t n,
                                      const Coefficients& c) {
  ORDO_ADAMW_EXACT
  const __m256 s = _mm256_set1_ps(c.bias2_sqrt), r = _mm256_set1_ps(1.0f / c.bias2_sqrt), eps = _mm256_set1_ps(c.eps),
               dec = _mm256_set1_ps(c.decay), ns = _mm256_set1_ps(c.neg_step);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 rt = root ? _mm256_loadu_ps(root + i) : _mm256_sqrt_ps(_mm256_loadu_ps(v + i));
    const __m256 d = _mm256_add_ps(Recip ? _mm256_mul_ps(rt, r) : _mm256_div_ps(rt, s), eps);
    const __m256 pd = _mm256_mul_ps(_mm256_loadu_ps(p + i), dec);
    _mm256_storeu_ps(p + i, _mm256_add_ps(pd, _mm256_div_ps(_mm256_mul_ps(ns, _mm256_loadu_ps(m + i)), d)));
  }
  params_portable<Recip>(p + i, m + i, v + i, root ? root + i : nullptr, n - i, c);
}

template <bool FmaM, bool FmaV>
ORDO_NF4_AVX512 inline void moments_avx512(const float* g, float* m, float* v, std::size_t n, const Coefficients& c) {
  ORDO_ADAMW_EXACT
  const __m512 gs = _mm512_set1_ps(c.grad_scale), b1 = _mm512_set1_ps(c.beta1), a1 = _mm512_set1_ps(c.one_minus_beta1),
               b2 = _mm512_set1_ps(c.beta2), a2 = _mm512_set1_ps(c.one_minus_beta2);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 gi = _mm512_mul_ps(_mm512_loadu_ps(g + i), gs);
    const __m512 mb = _mm512_mul_ps(_mm512_loadu_ps(m + i), b1);
    _mm512_storeu_ps(m + i, FmaM ? _mm512_fmadd_ps(gi, a1, mb) : _mm512_add_ps(mb, _mm512_mul_ps(gi, a1)));
    const __m512 vb = _mm512_mul_ps(_mm512_loadu_ps(v + i), b2);
    const __m512 t = _mm512_mul_ps(a2, gi);
    _mm512_storeu_ps(v + i, FmaV ? _mm512_fmadd_ps(t, gi, vb) : _mm512_add_ps(vb, _mm512_mul_ps(t, gi)));
  }
  moments_portable<FmaM, FmaV>(g + i, m + i, v + i, n - i, c);
}

template <bool Recip>
ORDO_NF4_AVX512 inline void params_avx512(float* p, const float* m, const float* v, const float* root, std::size_t n,
                                          const Coefficients& c) {
  ORDO_ADAMW_EXACT
  const __m512 s = _mm512_set1_ps(c.bias2_sqrt), r = _mm512_set1_ps(1.0f / c.bias2_sqrt), eps = _mm512_set1_ps(c.eps),
               dec = _mm512_set1_ps(c.decay), ns = _mm512_set1_ps(c.neg_step);
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    // (zero-masked with every lane on: the same vsqrtps, without GCC 12's spurious warning about
    // the unmasked form's undefined pass-through vector)
    const __m512 rt = root ? _mm512_loadu_ps(root + i) : _mm512_maskz_sqrt_ps(0xFFFF, _mm512_loadu_ps(v + i));
    const __m512 d = _mm512_add_ps(Recip ? _mm512_mul_ps(rt, r) : _mm512_div_ps(rt, s), eps);
    const __m512 pd = _mm512_mul_ps(_mm512_loadu_ps(p + i), dec);
    _mm512_storeu_ps(p + i, _mm512_add_ps(pd, _mm512_div_ps(_mm512_mul_ps(ns, _mm512_loadu_ps(m + i)), d)));
  }
  params_portable<Recip>(p + i, m + i, v + i, root ? root + i : nullptr, n - i, c);
}
#endif

template <bool FmaM, bool FmaV, bool Recip>
inline void update_on(Isa isa, float* p, const float* g, float* m, float* v, std::size_t n, const Coefficients& c,
                      sqrt_fn library_sqrt) {
  float root[library_block];
  const std::size_t step = library_sqrt ? library_block : block;
  for (std::size_t b = 0; b < n; b += step) {
    const std::size_t k = n - b < step ? n - b : step;
    float *pb = p + b, *mb = m + b, *vb = v + b;
    const float* gb = g + b;
    const float* rb = nullptr;
#if ORDO_NF4_HAVE_X86
    if (isa == Isa::avx512)
      moments_avx512<FmaM, FmaV>(gb, mb, vb, k, c);
    else if (isa == Isa::avx2)
      moments_avx2<FmaM, FmaV>(gb, mb, vb, k, c);
    else
#endif
      moments_portable<FmaM, FmaV>(gb, mb, vb, k, c);
    if (library_sqrt) {
      std::copy(vb, vb + k, root);
      library_sqrt(root, k);
      rb = root;
    }
#if ORDO_NF4_HAVE_X86
    if (isa == Isa::avx512)
      params_avx512<Recip>(pb, mb, vb, rb, k, c);
    else if (isa == Isa::avx2)
      params_avx2<Recip>(pb, mb, vb, rb, k, c);
    else
#endif
      params_portable<Recip>(pb, mb, vb, rb, k, c);
  }
}

}  // namespace detail

/// Updates n parameters p with gradients g and moments m, v in place (one AdamW step on one
/// range; callers split a tensor over threads, any split gives the same bits). `isa`:
/// Isa::automatic takes the widest path this CPU has; every path gives the same bits.
/// `library_sqrt`, when set, takes the square roots of the second moments in place, a block at
/// a time (a LibTorch whose sqrt is not IEEE's, fused_adamw.hpp); null: IEEE square roots.
inline void update(float* p, const float* g, float* m, float* v, std::size_t n, const Coefficients& c,
                   const Rounding& r, Isa isa = Isa::automatic, sqrt_fn library_sqrt = nullptr) {
  isa = quant::nf4::resolve_isa(isa);
  const int k = (r.first_moment_fma ? 4 : 0) | (r.second_moment_fma ? 2 : 0) | (r.divide_by_reciprocal ? 1 : 0);
  switch (k) {
    case 0: return detail::update_on<false, false, false>(isa, p, g, m, v, n, c, library_sqrt);
    case 1: return detail::update_on<false, false, true>(isa, p, g, m, v, n, c, library_sqrt);
    case 2: return detail::update_on<false, true, false>(isa, p, g, m, v, n, c, library_sqrt);
    case 3: return detail::update_on<false, true, true>(isa, p, g, m, v, n, c, library_sqrt);
    case 4: return detail::update_on<true, false, false>(isa, p, g, m, v, n, c, library_sqrt);
    case 5: return detail::update_on<true, false, true>(isa, p, g, m, v, n, c, library_sqrt);
    case 6: return detail::update_on<true, true, false>(isa, p, g, m, v, n, c, library_sqrt);
    default: return detail::update_on<true, true, true>(isa, p, g, m, v, n, c, library_sqrt);
  }
}

/// Every Rounding, the likeliest first (what a probe tries in turn).
inline constexpr Rounding roundings[] = {
    {true, false, false}, {true, true, false}, {false, false, false}, {false, true, false},
    {true, false, true},  {true, true, true},  {false, false, true},  {false, true, true},
};

}  // namespace ordo::train::adamw_cpu

#undef ORDO_ADAMW_EXACT
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif
