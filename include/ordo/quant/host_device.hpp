// ordo/quant/host_device.hpp — ORDO_HOST_DEVICE: marks functions that the CPU path and the
// CUDA kernels share (bit-level NF4 math). Expands to `__host__ __device__` under nvcc and to
// nothing for ordinary C++ compilers, so the headers that use it stay plain, std-only C++.
#pragma once

#if defined(__CUDACC__)
#define ORDO_HOST_DEVICE __host__ __device__
#else
#define ORDO_HOST_DEVICE
#endif
