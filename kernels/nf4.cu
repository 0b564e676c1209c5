// NF4 kernels: blockwise quantization, double quantization of absmax, dequantization and a
// batch-1 GEMV on packed weights. Declared in ordo/quant/cuda.hpp; the bit-level rules come from
// ordo/quant/nf4_codebook.hpp, shared with the CPU path, so both give the same bytes.
//
// Arithmetic is written with explicit round-to-nearest intrinsics (__fmul_rn, __fadd_rn,
// __frcp_rn) so that nvcc's FMA contraction cannot merge a product and a sum the rules keep
// apart. This file is compiled without --use_fast_math (bitsandbytes compiles its kernels with
// it: see docs/nf4.md).
#include <ordo/quant/cuda.hpp>

#include <cuda_runtime.h>

#include <cfloat>     // FLT_MAX
#include <cstdint>    // std::uint8_t, std::uint16_t
#include <stdexcept>  // std::invalid_argument, std::runtime_error
#include <string>     // std::string, std::to_string

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
                             " failed to launch: " + cudaGetErrorName(status) + ": " +
                             cudaGetErrorString(status));
}

void check_blocksize(const char* function, std::size_t blocksize) {
  if (!rules::is_valid_blocksize(blocksize))
    throw std::invalid_argument(std::string("ordo::cuda::nf4::") + function + ": blocksize " +
                                std::to_string(blocksize) +
                                " is not one of 32, 64, 128, 256, 512, 1024, 2048, 4096");
}

void check_pointer(const char* function, const void* p, const char* name) {
  if (p == nullptr)
    throw std::invalid_argument(std::string("ordo::cuda::nf4::") + function + ": " + name + " is null");
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

// ---- 4-bit quantization: one warp per block ------------------------------------------------------

template <class T>
__global__ void quantize_nf4_blocks(const T* __restrict__ x, std::size_t n, std::size_t blocksize,
                                    std::uint8_t* __restrict__ packed, float* __restrict__ absmax,
                                    rules::ZeroBlocks zero_blocks) {
  const int lane = threadIdx.x % warp;
  const std::size_t blocks = (n + blocksize - 1) / blocksize;
  const std::size_t warps_total = static_cast<std::size_t>(gridDim.x) * warps_per_cta;
  for (std::size_t b = static_cast<std::size_t>(blockIdx.x) * warps_per_cta + threadIdx.x / warp; b < blocks;
       b += warps_total) {
    const std::size_t begin = b * blocksize;
    const std::size_t len = n - begin < blocksize ? n - begin : blocksize;
    // absmax: NaN ignored; a partial block also sees its zero padding (as the CUDA rule loads it)
    float m = len < blocksize ? 0.0f : -FLT_MAX;
    for (std::size_t i = lane; i < len; i += warp) {
      const float a = fabsf(ordo::quant::to_float(x[begin + i]));
      m = a > m ? a : m;
    }
    m = warp_max(m);
    if (lane == 0) absmax[b] = m;
    const float scale = (m == 0.0f && zero_blocks == rules::ZeroBlocks::zero_code) ? 0.0f : __frcp_rn(m);
    for (std::size_t j = 2 * lane; j < len; j += 2 * warp) {
      const std::uint8_t first = rules::quantize_code(__fmul_rn(ordo::quant::to_float(x[begin + j]), scale));
      const float second_value = j + 1 < len ? ordo::quant::to_float(x[begin + j + 1]) : 0.0f;
      const std::uint8_t second = rules::quantize_code(__fmul_rn(second_value, scale));
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

// ---- dequantization: one packed byte per thread and step ------------------------------------------

template <class Out>
__global__ void dequantize_nf4(const std::uint8_t* __restrict__ packed, const float* __restrict__ absmax,
                               std::size_t n, std::size_t blocksize, Out* __restrict__ y) {
  __shared__ float lut[16];
  if (threadIdx.x < 16) lut[threadIdx.x] = rules::code_value(threadIdx.x);
  __syncthreads();
  const std::size_t bytes = (n + 1) / 2;
  for (std::size_t j = static_cast<std::size_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < bytes;
       j += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::uint8_t b = packed[j];
    const float scale = absmax[(2 * j) / blocksize];  // blocksize is even: both elements share it
    y[2 * j] = ordo::quant::from_float<Out>(__fmul_rn(lut[rules::high_code(b)], scale));
    if (2 * j + 1 < n) y[2 * j + 1] = ordo::quant::from_float<Out>(__fmul_rn(lut[rules::low_code(b)], scale));
  }
}

// ---- batch-1 GEMV: one warp per row, 16 bytes (32 weights) per lane and step ------------------------

__global__ void gemv_nf4(const std::uint8_t* __restrict__ w, const float* __restrict__ absmax, std::size_t rows,
                         std::size_t cols, std::size_t blocksize, const float* __restrict__ x, float* __restrict__ y,
                         bool vector_loads) {
  __shared__ float lut[16];
  if (threadIdx.x < 16) lut[threadIdx.x] = rules::code_value(threadIdx.x);
  __syncthreads();
  const int lane = threadIdx.x % warp;
  const std::size_t warps_total = static_cast<std::size_t>(gridDim.x) * warps_per_cta;
  for (std::size_t r = static_cast<std::size_t>(blockIdx.x) * warps_per_cta + threadIdx.x / warp; r < rows;
       r += warps_total) {
    const std::uint8_t* row = w + r * (cols / 2);
    const float* scales = absmax + r * (cols / blocksize);
    float acc = 0.0f;
    for (std::size_t k0 = static_cast<std::size_t>(lane) * 32; k0 < cols; k0 += 32 * warp) {
      alignas(16) std::uint8_t bytes[16];
      if (vector_loads) {
        *reinterpret_cast<uint4*>(bytes) = *reinterpret_cast<const uint4*>(row + k0 / 2);
      } else {
        for (int t = 0; t < 16; ++t) bytes[t] = row[k0 / 2 + t];
      }
      float chunk = 0.0f;
#pragma unroll
      for (int t = 0; t < 16; ++t) {
        chunk = fmaf(lut[rules::high_code(bytes[t])], x[k0 + 2 * t], chunk);
        chunk = fmaf(lut[rules::low_code(bytes[t])], x[k0 + 2 * t + 1], chunk);
      }
      acc = fmaf(chunk, scales[k0 / blocksize], acc);
    }
    acc = warp_sum(acc);
    if (lane == 0) y[r] = acc;
  }
}

DynamicMap dynamic_map_parameter() {
  DynamicMap map{};
  for (int i = 0; i < 256; ++i) map.value[i] = rules::dynamic_map[i];
  return map;
}

}  // namespace

void quantize(const void* x, Dtype dtype, std::size_t n, std::size_t blocksize, std::uint8_t* packed, float* absmax,
              cudaStream_t stream, ZeroBlocks zero_blocks) {
  check_blocksize("quantize", blocksize);
  if (n == 0) return;
  check_pointer("quantize", x, "x");
  check_pointer("quantize", packed, "packed");
  check_pointer("quantize", absmax, "absmax");
  const unsigned grid = grid_for(rules::block_count(n, blocksize), warps_per_cta);
  switch (dtype) {
    case Dtype::f32:
      quantize_nf4_blocks<<<grid, threads_per_cta, 0, stream>>>(static_cast<const float*>(x), n, blocksize, packed,
                                                                 absmax, zero_blocks);
      break;
    case Dtype::f16:
      quantize_nf4_blocks<<<grid, threads_per_cta, 0, stream>>>(static_cast<const f16*>(x), n, blocksize, packed,
                                                                 absmax, zero_blocks);
      break;
    case Dtype::bf16:
      quantize_nf4_blocks<<<grid, threads_per_cta, 0, stream>>>(static_cast<const bf16*>(x), n, blocksize, packed,
                                                                 absmax, zero_blocks);
      break;
    default:
      throw std::invalid_argument("ordo::cuda::nf4::quantize: unknown dtype");
  }
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
  const unsigned grid = grid_for(rules::packed_bytes(n), threads_per_cta);
  switch (dtype) {
    case Dtype::f32:
      dequantize_nf4<<<grid, threads_per_cta, 0, stream>>>(packed, absmax, n, blocksize, static_cast<float*>(y));
      break;
    case Dtype::f16:
      dequantize_nf4<<<grid, threads_per_cta, 0, stream>>>(packed, absmax, n, blocksize, static_cast<f16*>(y));
      break;
    case Dtype::bf16:
      dequantize_nf4<<<grid, threads_per_cta, 0, stream>>>(packed, absmax, n, blocksize, static_cast<bf16*>(y));
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
  const bool vector_loads = reinterpret_cast<std::uintptr_t>(w) % 16 == 0;  // rows stay aligned: cols % 32 == 0
  gemv_nf4<<<grid_for(rows, warps_per_cta), threads_per_cta, 0, stream>>>(w, absmax, rows, cols, blocksize, x, y,
                                                                          vector_loads);
  check_launch("gemv", "gemv_nf4");
}

}  // namespace ordo::cuda::nf4
