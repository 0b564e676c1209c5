// ordo/kernels/nf4.hpp — host-only declarations of the NF4 CUDA kernels (kernels/nf4.cu, target
// ordo::kernels). Includes no CUDA header: any C++ translation unit may include it; link
// ordo::kernels to call the functions (the target exists when nvcc was found at configure time,
// and code linking it sees ORDO_HAVE_KERNELS=1).
//
// Every pointer is device memory; every function enqueues work on `stream` and returns without
// waiting. The bytes are those of ordo's CPU path (ordo/quant/nf4_cpu.hpp) for the same input:
// both follow the rules in ordo/quant/nf4_codebook.hpp (tests/quant/nf4_cuda_test.cpp compares
// them). Invalid arguments throw std::invalid_argument; a failed launch throws
// std::runtime_error naming the function, the kernel and the CUDA error.
#pragma once

#include <cstddef>  // std::size_t
#include <cstdint>  // std::uint8_t

#include <ordo/quant/nf4_codebook.hpp>  // ordo::quant::nf4::ZeroBlocks

struct CUstream_st;
using cudaStream_t = CUstream_st*;  // the CUDA runtime's own definition, without its header

namespace ordo::cuda::nf4 {

using ordo::quant::nf4::ZeroBlocks;

/// Element type of a dense input or output: fp32, IEEE fp16 or bfloat16.
enum class Dtype : int { f32 = 0, f16 = 1, bf16 = 2 };

/// The arithmetic of the quantizer's scale and product.
enum class Arithmetic : int {
  /// Correctly rounded 1/absmax and x * (1/absmax), subnormals kept: the same bytes as ordo's CPU
  /// path on every machine (the default).
  exact = 0,
  /// What bitsandbytes' CUDA build computes (nvcc --use_fast_math): the approximate reciprocal
  /// (rcp.approx.ftz) and subnormals flushed to zero in |x|, the max and the product. With
  /// ZeroBlocks::cuda, bitsandbytes' quantize_4bit bytes and absmax on the same GPU
  /// (tests/quant/check_nf4_fixture_cuda.py); it differs from `exact` only where x * (1/absmax)
  /// lies within an ulp of a threshold, or where subnormals or absmax > 2^126 are involved.
  fast_math = 1,
};

/// Blockwise NF4 quantization of n values of type `dtype` at `x`: `packed` receives
/// (n + 1) / 2 bytes, `absmax` one float per block of `blocksize` (32 ... 4096).
void quantize(const void* x, Dtype dtype, std::size_t n, std::size_t blocksize, std::uint8_t* packed, float* absmax,
              cudaStream_t stream, ZeroBlocks zero_blocks = ZeroBlocks::zero_code,
              Arithmetic arithmetic = Arithmetic::exact);

/// Bytes of device workspace quantize_absmax needs for `blocks` absmax values.
std::size_t quantize_absmax_workspace_bytes(std::size_t blocks);

/// Double quantization of `blocks` absmax values: offset[0] = their mean (the fixed summation
/// order of ordo::quant::nf4::absmax_offset), codes[i] the 8-bit dynamic-map code of absmax[i] - offset,
/// absmax2 one float per 256 values. `workspace` holds quantize_absmax_workspace_bytes(blocks).
void quantize_absmax(const float* absmax, std::size_t blocks, float* offset, std::uint8_t* codes, float* absmax2,
                     void* workspace, cudaStream_t stream);

/// absmax[i] = dynamic_map[codes[i]] * absmax2[i / 256] + offset[0] (two fp32 roundings).
void dequantize_absmax(const std::uint8_t* codes, const float* absmax2, const float* offset, std::size_t blocks,
                       float* absmax, cudaStream_t stream);

/// y[i] = code_value(code_i) * absmax[i / blocksize] in fp32, rounded to `dtype` (nearest even).
void dequantize(const std::uint8_t* packed, const float* absmax, std::size_t n, std::size_t blocksize, void* y,
                Dtype dtype, cudaStream_t stream);

/// y = W x for W [rows, cols] quantized row-major with `blocksize`; fp32 x and y, fp32
/// accumulation; four rows per CTA of 256 threads. Requires cols % blocksize == 0 (otherwise dequantize and
/// multiply), as bitsandbytes' kgemm_4bit_inference_naive does.
void gemv(const std::uint8_t* w, const float* absmax, std::size_t rows, std::size_t cols, std::size_t blocksize,
          const float* x, float* y, cudaStream_t stream);

}  // namespace ordo::cuda::nf4
