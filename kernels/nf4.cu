// NF4 kernels: blockwise quantization, double quantization of absmax, dequantization and a
// batch-1 GEMV on packed weights. Declared in ordo/kernels/nf4.hpp; the bit-level rules come from
// ordo/quant/nf4_codebook.hpp, shared with the CPU path, so both give the same bytes.
//
// Arithmetic is written with explicit round-to-nearest intrinsics (__fmul_rn, __fadd_rn,
// __frcp_rn) so that nvcc's FMA contraction cannot merge a product and a sum the rules keep
// apart. This file is compiled without --use_fast_math (bitsandbytes compiles its kernels with
// it: see docs/nf4.md).
#include <ordo/kernels/nf4.hpp>

#include <cuda_runtime.h>

#include <bit>          // std::countr_zero
#include <cfloat>       // FLT_MAX
#include <cstdint>      // std::uint8_t, std::uint16_t
#include <stdexcept>    // std::invalid_argument, std::runtime_error
#include <string>       // std::string, std::to_string
#include <type_traits>  // std::remove_pointer_t

#include <ordo/quant/float_bits.hpp>    // to_float, from_float, f16, bf16
#include <ordo/quant/nf4_codebook.hpp>  // quantize_code, code_value, quantize_code8, dynamic_map

namespace ordo::cuda::nf4 {
namespace {

namespace rules = ordo::quant::nf4;
using ordo::quant::bf16;
using ordo::quant::f16;

constexpr int warp = 32;
constexpr int threads_per_cta = 256;
constexpr int warps_per_cta = threads_per_cta / warp;

void check_launch(const char* function, const char* kernel) {
  const cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess)
    throw std::runtime_error(std::string("ordo::cuda::nf4::") + function + ": kernel " + kernel +
                             " failed to launch: " + cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
}

void check_blocksize(const char* function, std::size_t blocksize) {
  if (!rules::is_valid_blocksize(blocksize))
    throw std::invalid_argument(std::string("ordo::cuda::nf4::") + function + ": blocksize " +
                                std::to_string(blocksize) + " is not one of 32, 64, 128, 256, 512, 1024, 2048, 4096");
}

void check_pointer(const char* function, const void* p, const char* name) {
  if (p == nullptr) throw std::invalid_argument(std::string("ordo::cuda::nf4::") + function + ": " + name + " is null");
}

unsigned grid_for(std::size_t items, std::size_t per_cta) {
  const std::size_t ctas = (items + per_cta - 1) / per_cta;
  return static_cast<unsigned>(ctas < (1u << 30) ? ctas : (1u << 30));  // grid-stride loops cover the rest
}

__device__ inline float warp_max(float m) {
  for (int o = warp / 2; o > 0; o /= 2) {
    const float other = __shfl_xor_sync(0xFFFFFFFFu, m, o);
    m = other > m ? other : m;
  }
  return m;
}

__device__ inline float warp_sum(float s) {
  for (int o = warp / 2; o > 0; o /= 2) s += __shfl_xor_sync(0xFFFFFFFFu, s, o);
  return s;
}

// ---- bitsandbytes' fast-math arithmetic -----------------------------------------------------------
// bitsandbytes builds kQuantizeBlockwise with nvcc --use_fast_math: |x| and max flush subnormals
// to zero, 1.0f / absmax is the approximate reciprocal, and the product flushes subnormals. The
// same PTX instructions, so that Arithmetic::fast_math gives its bytes on the same GPU.

__device__ inline float abs_ftz(float a) {
  float r;
  asm("abs.ftz.f32 %0, %1;" : "=f"(r) : "f"(a));
  return r;
}
__device__ inline float max_ftz(float a, float b) {
  float r;
  asm("max.ftz.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}
__device__ inline float rcp_approx_ftz(float a) {
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(a));
  return r;
}
__device__ inline float mul_rn_ftz(float a, float b) {
  float r;
  asm("mul.rn.ftz.f32 %0, %1, %2;" : "=f"(r) : "f"(a), "f"(b));
  return r;
}

// ---- 4-bit quantization: one warp per block ------------------------------------------------------

template <bool FastMath, class T>
__global__ void quantize_nf4_blocks(const T* __restrict__ x, std::size_t n, std::size_t blocksize,
                                    std::uint8_t* __restrict__ packed, float* __restrict__ absmax,
                                    rules::ZeroBlocks zero_blocks) {
  const int lane = threadIdx.x % warp;
  const std::size_t blocks = (n + blocksize - 1) / blocksize;
  const std::size_t warps_total = static_cast<std::size_t>(gridDim.x) * warps_per_cta;
  const auto times = [](float v, float s) { return FastMath ? mul_rn_ftz(v, s) : __fmul_rn(v, s); };
  for (std::size_t b = static_cast<std::size_t>(blockIdx.x) * warps_per_cta + threadIdx.x / warp; b < blocks;
       b += warps_total) {
    const std::size_t begin = b * blocksize;
    const std::size_t len = n - begin < blocksize ? n - begin : blocksize;
    // absmax: NaN ignored; a partial block also sees its zero padding (as the CUDA rule loads it)
    float m = len < blocksize ? 0.0f : -FLT_MAX;
    for (std::size_t i = lane; i < len; i += warp) {
      const float v = ordo::quant::to_float(x[begin + i]);
      if constexpr (FastMath) {
        m = max_ftz(m, abs_ftz(v));
      } else {
        const float a = fabsf(v);
        m = a > m ? a : m;
      }
    }
    m = warp_max(m);
    if (lane == 0) absmax[b] = m;
    const float scale = (m == 0.0f && zero_blocks == rules::ZeroBlocks::zero_code) ? 0.0f
                        : FastMath                                                 ? rcp_approx_ftz(m)
                                                                                   : __frcp_rn(m);
    for (std::size_t j = 2 * lane; j < len; j += 2 * warp) {
      const std::uint8_t first = rules::quantize_code(times(ordo::quant::to_float(x[begin + j]), scale));
      const float second_value = j + 1 < len ? ordo::quant::to_float(x[begin + j + 1]) : 0.0f;
      const std::uint8_t second = rules::quantize_code(times(second_value, scale));
      packed[(begin + j) / 2] = rules::pack(first, second);
    }
  }
}

// ---- double quantization of absmax ---------------------------------------------------------------

struct DynamicMap {
  float value[256];
};

// Chunk sums of the offset, in ordo::quant::nf4::absmax_offset's order: one thread per chunk.
__global__ void absmax_chunk_sums(const float* __restrict__ absmax, std::size_t blocks, double* __restrict__ sums) {
  const std::size_t chunks = (blocks + rules::offset_chunk - 1) / rules::offset_chunk;
  for (std::size_t c = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < chunks;
       c += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t begin = c * rules::offset_chunk;
    const std::size_t end = blocks - begin < rules::offset_chunk ? blocks : begin + rules::offset_chunk;
    double s = 0.0;
    for (std::size_t i = begin; i < end; ++i) s = __dadd_rn(s, static_cast<double>(absmax[i]));
    sums[c] = s;
  }
}

__global__ void absmax_offset_total(const double* __restrict__ sums, std::size_t blocks, float* __restrict__ offset) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  const std::size_t chunks = (blocks + rules::offset_chunk - 1) / rules::offset_chunk;
  double total = 0.0;
  for (std::size_t c = 0; c < chunks; ++c) total = __dadd_rn(total, sums[c]);
  offset[0] = static_cast<float>(__ddiv_rn(total, static_cast<double>(blocks)));
}

// 8-bit blockwise quantization of absmax - offset, blocksize 256: one warp per block.
__global__ void quantize_absmax_blocks(const float* __restrict__ absmax, std::size_t blocks,
                                       const float* __restrict__ offset, std::uint8_t* __restrict__ codes,
                                       float* __restrict__ absmax2, DynamicMap map) {
  __shared__ float smap[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) smap[i] = map.value[i];
  __syncthreads();
  const int lane = threadIdx.x % warp;
  const float off = offset[0];
  const std::size_t bs = rules::absmax_blocksize;
  const std::size_t groups = (blocks + bs - 1) / bs;
  const std::size_t warps_total = static_cast<std::size_t>(gridDim.x) * warps_per_cta;
  for (std::size_t g = static_cast<std::size_t>(blockIdx.x) * warps_per_cta + threadIdx.x / warp; g < groups;
       g += warps_total) {
    const std::size_t begin = g * bs;
    const std::size_t len = blocks - begin < bs ? blocks - begin : bs;
    float m = len < bs ? 0.0f : -FLT_MAX;
    for (std::size_t i = lane; i < len; i += warp) {
      const float a = fabsf(__fsub_rn(absmax[begin + i], off));
      m = a > m ? a : m;
    }
    m = warp_max(m);
    if (lane == 0) absmax2[g] = m;
    const float scale = __frcp_rn(m);
    for (std::size_t i = lane; i < len; i += warp)
      codes[begin + i] = rules::quantize_code8(smap, __fmul_rn(__fsub_rn(absmax[begin + i], off), scale));
  }
}

__global__ void dequantize_absmax_values(const std::uint8_t* __restrict__ codes, const float* __restrict__ absmax2,
                                         const float* __restrict__ offset, std::size_t blocks,
                                         float* __restrict__ absmax, DynamicMap map) {
  const float off = offset[0];
  for (std::size_t i = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < blocks;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    absmax[i] = __fadd_rn(__fmul_rn(map.value[codes[i]], absmax2[i / rules::absmax_blocksize]), off);
}

// ---- dequantization -------------------------------------------------------------------------------
// Vector path: thread t of the grid turns group g = t, t + stride, ... into V values, V = 4 for fp32
// and 8 for 16-bit outputs, so that every store is 16 bytes and a warp's loads and stores are each
// one contiguous stretch (V/2 bytes per lane in, 16 bytes per lane out). A group lies in one block
// (blocksize >= 32, groups start at multiples of V), so one absmax serves it. Each thread handles
// four groups per step, loads first. The scalar kernel takes unaligned pointers and the tail.

template <class Out>
struct VecTraits;
template <>
struct VecTraits<float> {
  static constexpr int values = 4;
  using In = std::uint16_t;
};
template <>
struct VecTraits<f16> {
  static constexpr int values = 8;
  using In = std::uint32_t;
};
template <>
struct VecTraits<bf16> {
  static constexpr int values = 8;
  using In = std::uint32_t;
};

__device__ inline void store_values(float* y, const float (&v)[4]) {
  *reinterpret_cast<float4*>(y) = make_float4(v[0], v[1], v[2], v[3]);
}

template <class Half>
__device__ inline void store_values(Half* y, const float (&v)[8]) {
  std::uint32_t bits[4];
#pragma unroll
  for (int q = 0; q < 4; ++q)
    bits[q] = static_cast<std::uint32_t>(ordo::quant::from_float<Half>(v[2 * q]).bits) |
              (static_cast<std::uint32_t>(ordo::quant::from_float<Half>(v[2 * q + 1]).bits) << 16);
  *reinterpret_cast<uint4*>(y) = make_uint4(bits[0], bits[1], bits[2], bits[3]);
}

template <class Out>
__global__ void dequantize_nf4_vec(const std::uint8_t* __restrict__ packed, const float* __restrict__ absmax,
                                   std::size_t groups, unsigned block_shift, Out* __restrict__ y) {
  constexpr int V = VecTraits<Out>::values, per_thread = 4;
  using In = typename VecTraits<Out>::In;
  __shared__ float lut[16];
  if (threadIdx.x < 16) lut[threadIdx.x] = rules::code_value(threadIdx.x);
  __syncthreads();
  const auto* in = reinterpret_cast<const In*>(packed);
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t g0 = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; g0 < groups;
       g0 += per_thread * stride) {
    In word[per_thread];
    float scale[per_thread];
#pragma unroll
    for (int u = 0; u < per_thread; ++u) {
      const std::size_t g = g0 + u * stride;
      word[u] = g < groups ? __ldg(in + g) : In{0};
      scale[u] = g < groups ? __ldg(absmax + ((g * V) >> block_shift)) : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < per_thread; ++u) {
      const std::size_t g = g0 + u * stride;
      if (g >= groups) break;
      float v[V];
#pragma unroll
      for (int t = 0; t < V / 2; ++t) {
        const std::uint8_t b = static_cast<std::uint8_t>(word[u] >> (8 * t));
        v[2 * t] = __fmul_rn(lut[rules::high_code(b)], scale[u]);
        v[2 * t + 1] = __fmul_rn(lut[rules::low_code(b)], scale[u]);
      }
      store_values(y + g * V, v);
    }
  }
}

template <class Out>
__global__ void dequantize_nf4(const std::uint8_t* __restrict__ packed, const float* __restrict__ absmax,
                               std::size_t first_byte, std::size_t n, std::size_t blocksize, Out* __restrict__ y) {
  __shared__ float lut[16];
  if (threadIdx.x < 16) lut[threadIdx.x] = rules::code_value(threadIdx.x);
  __syncthreads();
  const std::size_t bytes = (n + 1) / 2;
  for (std::size_t j = first_byte + static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < bytes;
       j += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::uint8_t b = packed[j];
    const float scale = absmax[(2 * j) / blocksize];  // blocksize is even: both elements share it
    y[2 * j] = ordo::quant::from_float<Out>(__fmul_rn(lut[rules::high_code(b)], scale));
    if (2 * j + 1 < n) y[2 * j + 1] = ordo::quant::from_float<Out>(__fmul_rn(lut[rules::low_code(b)], scale));
  }
}

// ---- batch-1 GEMV ---------------------------------------------------------------------------------
// One CTA per Rows rows; its warps split the columns. A row is cut into 128-byte stretches (256
// weights); warp w takes stretches w, w + warps, ..., Stretches of them per step with every load
// of the step issued before any arithmetic. In a stretch lane l takes 4 bytes (8 weights) at byte
// 4 l, so each load instruction reads 128 contiguous bytes of weights, and x (two 16-byte loads
// per lane, 1 KiB contiguous per warp) is loaded once for all Rows rows. 8 weights never straddle
// a block (blocksize >= 32). cols is a multiple of 32, so a row is a whole number of 16-byte
// units. Partial sums: warp shuffle, then the warps' sums in shared memory in a fixed order.
// At most 64 registers per thread (four CTAs of 256 threads per SM, by __launch_bounds__):
// unbounded, the compiler takes 80, three CTAs fit, and the kernel is 18-30 % slower (H100).

template <int Rows, bool Aligned>
__global__ void __launch_bounds__(threads_per_cta, 4)
    gemv_nf4(const std::uint8_t* __restrict__ w, const float* __restrict__ absmax, std::size_t rows, std::size_t cols,
             unsigned block_shift, const float* __restrict__ x, float* __restrict__ y) {
  constexpr int Stretches = 2;  // per step and warp
  __shared__ float lut[16];
  __shared__ float partial[warps_per_cta][Rows];
  if (threadIdx.x < 16) lut[threadIdx.x] = rules::code_value(threadIdx.x);
  __syncthreads();
  const int lane = threadIdx.x % warp, wid = threadIdx.x / warp;
  const std::size_t row_bytes = cols / 2, row_blocks = cols >> block_shift;
  const std::size_t stretches = (row_bytes + 4 * warp - 1) / (4 * warp);
  for (std::size_t r0 = static_cast<std::size_t>(blockIdx.x) * Rows; r0 < rows;
       r0 += static_cast<std::size_t>(gridDim.x) * Rows) {
    std::size_t row[Rows];
    float acc[Rows];
#pragma unroll
    for (int i = 0; i < Rows; ++i) {
      row[i] = r0 + i < rows ? r0 + i : rows - 1;  // a short last group repeats a row, not stored
      acc[i] = 0.0f;
    }
    for (std::size_t s0 = wid; s0 < stretches; s0 += Stretches * warps_per_cta) {
      std::uint32_t word[Stretches][Rows];
      float scale[Stretches][Rows];
      float xv[Stretches][8];
#pragma unroll
      for (int u = 0; u < Stretches; ++u) {
        const std::size_t o = (s0 + u * warps_per_cta) * 4 * warp + 4 * lane;  // byte offset in the row
        const bool in = o < row_bytes;
        const std::size_t k = 2 * o;  // first weight
#pragma unroll
        for (int i = 0; i < Rows; ++i) {
          const std::uint8_t* src = w + row[i] * row_bytes + o;
          if constexpr (Aligned) {
            word[u][i] = in ? __ldg(reinterpret_cast<const unsigned int*>(src)) : 0u;
          } else {
            word[u][i] = in ? static_cast<std::uint32_t>(src[0]) | (static_cast<std::uint32_t>(src[1]) << 8) |
                                  (static_cast<std::uint32_t>(src[2]) << 16) |
                                  (static_cast<std::uint32_t>(src[3]) << 24)
                            : 0u;
          }
          scale[u][i] = in ? __ldg(absmax + row[i] * row_blocks + (k >> block_shift)) : 0.0f;
        }
        if constexpr (Aligned) {
          const float4 lo = in ? __ldg(reinterpret_cast<const float4*>(x + k)) : make_float4(0, 0, 0, 0);
          const float4 hi = in ? __ldg(reinterpret_cast<const float4*>(x + k) + 1) : make_float4(0, 0, 0, 0);
          xv[u][0] = lo.x, xv[u][1] = lo.y, xv[u][2] = lo.z, xv[u][3] = lo.w;
          xv[u][4] = hi.x, xv[u][5] = hi.y, xv[u][6] = hi.z, xv[u][7] = hi.w;
        } else {
#pragma unroll
          for (int t = 0; t < 8; ++t) xv[u][t] = in ? __ldg(x + k + t) : 0.0f;
        }
      }
#pragma unroll
      for (int u = 0; u < Stretches; ++u) {
#pragma unroll
        for (int i = 0; i < Rows; ++i) {
          float chunk = 0.0f;
#pragma unroll
          for (int t = 0; t < 4; ++t) {
            const std::uint8_t b = static_cast<std::uint8_t>(word[u][i] >> (8 * t));
            chunk = fmaf(lut[rules::high_code(b)], xv[u][2 * t], chunk);
            chunk = fmaf(lut[rules::low_code(b)], xv[u][2 * t + 1], chunk);
          }
          acc[i] = fmaf(chunk, scale[u][i], acc[i]);
        }
      }
    }
#pragma unroll
    for (int i = 0; i < Rows; ++i) {
      const float total = warp_sum(acc[i]);
      if (lane == 0) partial[wid][i] = total;
    }
    __syncthreads();
    if (threadIdx.x < Rows && r0 + threadIdx.x < rows) {
      float total = 0.0f;
      for (int v = 0; v < warps_per_cta; ++v) total += partial[v][threadIdx.x];
      y[r0 + threadIdx.x] = total;
    }
    __syncthreads();
  }
}

// log2 of a valid (power-of-two) blocksize
unsigned log2_of(std::size_t blocksize) { return static_cast<unsigned>(std::countr_zero(blocksize)); }

DynamicMap dynamic_map_parameter() {
  DynamicMap map{};
  for (int i = 0; i < 256; ++i) map.value[i] = rules::dynamic_map[i];
  return map;
}

}  // namespace

namespace {
template <bool FastMath>
void launch_quantize(const void* x, Dtype dtype, std::size_t n, std::size_t blocksize, std::uint8_t* packed,
                     float* absmax, cudaStream_t stream, ZeroBlocks zero_blocks) {
  const unsigned grid = grid_for(rules::block_count(n, blocksize), warps_per_cta);
  switch (dtype) {
    case Dtype::f32:
      quantize_nf4_blocks<FastMath><<<grid, threads_per_cta, 0, stream>>>(static_cast<const float*>(x), n, blocksize,
                                                                          packed, absmax, zero_blocks);
      break;
    case Dtype::f16:
      quantize_nf4_blocks<FastMath>
          <<<grid, threads_per_cta, 0, stream>>>(static_cast<const f16*>(x), n, blocksize, packed, absmax, zero_blocks);
      break;
    case Dtype::bf16:
      quantize_nf4_blocks<FastMath><<<grid, threads_per_cta, 0, stream>>>(static_cast<const bf16*>(x), n, blocksize,
                                                                          packed, absmax, zero_blocks);
      break;
    default:
      throw std::invalid_argument("ordo::cuda::nf4::quantize: unknown dtype");
  }
}
}  // namespace

void quantize(const void* x, Dtype dtype, std::size_t n, std::size_t blocksize, std::uint8_t* packed, float* absmax,
              cudaStream_t stream, ZeroBlocks zero_blocks, Arithmetic arithmetic) {
  check_blocksize("quantize", blocksize);
  if (n == 0) return;
  check_pointer("quantize", x, "x");
  check_pointer("quantize", packed, "packed");
  check_pointer("quantize", absmax, "absmax");
  if (arithmetic == Arithmetic::fast_math)
    launch_quantize<true>(x, dtype, n, blocksize, packed, absmax, stream, zero_blocks);
  else
    launch_quantize<false>(x, dtype, n, blocksize, packed, absmax, stream, zero_blocks);
  check_launch("quantize", "quantize_nf4_blocks");
}

std::size_t quantize_absmax_workspace_bytes(std::size_t blocks) {
  return sizeof(double) * ((blocks + rules::offset_chunk - 1) / rules::offset_chunk);
}

void quantize_absmax(const float* absmax, std::size_t blocks, float* offset, std::uint8_t* codes, float* absmax2,
                     void* workspace, cudaStream_t stream) {
  if (blocks == 0) return;
  check_pointer("quantize_absmax", absmax, "absmax");
  check_pointer("quantize_absmax", offset, "offset");
  check_pointer("quantize_absmax", codes, "codes");
  check_pointer("quantize_absmax", absmax2, "absmax2");
  check_pointer("quantize_absmax", workspace, "workspace");
  auto* sums = static_cast<double*>(workspace);
  const std::size_t chunks = (blocks + rules::offset_chunk - 1) / rules::offset_chunk;
  absmax_chunk_sums<<<grid_for(chunks, 128), 128, 0, stream>>>(absmax, blocks, sums);
  check_launch("quantize_absmax", "absmax_chunk_sums");
  absmax_offset_total<<<1, 1, 0, stream>>>(sums, blocks, offset);
  check_launch("quantize_absmax", "absmax_offset_total");
  const std::size_t groups = (blocks + rules::absmax_blocksize - 1) / rules::absmax_blocksize;
  quantize_absmax_blocks<<<grid_for(groups, warps_per_cta), threads_per_cta, 0, stream>>>(
      absmax, blocks, offset, codes, absmax2, dynamic_map_parameter());
  check_launch("quantize_absmax", "quantize_absmax_blocks");
}

void dequantize_absmax(const std::uint8_t* codes, const float* absmax2, const float* offset, std::size_t blocks,
                       float* absmax, cudaStream_t stream) {
  if (blocks == 0) return;
  check_pointer("dequantize_absmax", codes, "codes");
  check_pointer("dequantize_absmax", absmax2, "absmax2");
  check_pointer("dequantize_absmax", offset, "offset");
  check_pointer("dequantize_absmax", absmax, "absmax");
  dequantize_absmax_values<<<grid_for(blocks, threads_per_cta), threads_per_cta, 0, stream>>>(
      codes, absmax2, offset, blocks, absmax, dynamic_map_parameter());
  check_launch("dequantize_absmax", "dequantize_absmax_values");
}

void dequantize(const std::uint8_t* packed, const float* absmax, std::size_t n, std::size_t blocksize, void* y,
                Dtype dtype, cudaStream_t stream) {
  check_blocksize("dequantize", blocksize);
  if (n == 0) return;
  check_pointer("dequantize", packed, "packed");
  check_pointer("dequantize", absmax, "absmax");
  check_pointer("dequantize", y, "y");
  // the vector kernel over whole groups of V values (4 for fp32, 8 for 16-bit) when the pointers
  // allow V/2-byte loads and 16-byte stores; the scalar kernel for the rest
  const unsigned shift = log2_of(blocksize);
  const auto run = [&](auto* out) {
    constexpr std::size_t V = VecTraits<std::remove_pointer_t<decltype(out)>>::values;
    const bool aligned =
        reinterpret_cast<std::uintptr_t>(packed) % (V / 2) == 0 && reinterpret_cast<std::uintptr_t>(out) % 16 == 0;
    const std::size_t groups = aligned ? n / V : 0;
    const std::size_t tail_bytes = rules::packed_bytes(n) - V / 2 * groups;
    if (groups)
      dequantize_nf4_vec<<<grid_for(groups, 4 * threads_per_cta), threads_per_cta, 0, stream>>>(packed, absmax, groups,
                                                                                                shift, out);
    if (tail_bytes)
      dequantize_nf4<<<grid_for(tail_bytes, threads_per_cta), threads_per_cta, 0, stream>>>(
          packed, absmax, V / 2 * groups, n, blocksize, out);
  };
  switch (dtype) {
    case Dtype::f32:
      run(static_cast<float*>(y));
      break;
    case Dtype::f16:
      run(static_cast<f16*>(y));
      break;
    case Dtype::bf16:
      run(static_cast<bf16*>(y));
      break;
    default:
      throw std::invalid_argument("ordo::cuda::nf4::dequantize: unknown dtype");
  }
  check_launch("dequantize", "dequantize_nf4");
}

void gemv(const std::uint8_t* w, const float* absmax, std::size_t rows, std::size_t cols, std::size_t blocksize,
          const float* x, float* y, cudaStream_t stream) {
  check_blocksize("gemv", blocksize);
  if (cols % blocksize != 0)
    throw std::invalid_argument("ordo::cuda::nf4::gemv: cols (" + std::to_string(cols) +
                                ") must be a multiple of the blocksize (" + std::to_string(blocksize) +
                                "); dequantize and multiply instead");
  if (rows == 0) return;
  check_pointer("gemv", w, "w");
  check_pointer("gemv", absmax, "absmax");
  check_pointer("gemv", x, "x");
  check_pointer("gemv", y, "y");
  // rows stay 4-byte aligned (cols % 32 == 0), and x + k stays 16-byte aligned (k % 8 == 0)
  const bool aligned = reinterpret_cast<std::uintptr_t>(w) % 4 == 0 && reinterpret_cast<std::uintptr_t>(x) % 16 == 0;
  constexpr int rows_per_cta = 4;  // rows per CTA
  const unsigned grid = grid_for(rows, rows_per_cta);
  const unsigned shift = log2_of(blocksize);
  if (aligned)
    gemv_nf4<rows_per_cta, true><<<grid, threads_per_cta, 0, stream>>>(w, absmax, rows, cols, shift, x, y);
  else
    gemv_nf4<rows_per_cta, false><<<grid, threads_per_cta, 0, stream>>>(w, absmax, rows, cols, shift, x, y);
  check_launch("gemv", "gemv_nf4");
}

}  // namespace ordo::cuda::nf4
