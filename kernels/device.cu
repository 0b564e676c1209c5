// Device discovery for ordo::kernels. GPU tests and the CUDA dispatch use it to decide whether
// a device is there, so it must report "none" cleanly on machines without a driver or GPU.
#include <ordo/kernels/device.hpp>

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

namespace ordo::cuda {
namespace {
thread_local std::string last_query_error;
}

int device_count() noexcept {
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess) {
    last_query_error = std::string(cudaGetErrorName(status)) + ": " + cudaGetErrorString(status);
    (void)cudaGetLastError();  // clear the sticky error so later calls start clean
    return 0;
  }
  last_query_error = count == 0 ? "the CUDA runtime reports no device" : "";
  return count;
}

std::string device_query_error() { return last_query_error; }

std::string device_description(int index) {
  cudaDeviceProp prop{};
  cudaError_t status = cudaGetDeviceProperties(&prop, index);
  if (status != cudaSuccess) {
    (void)cudaGetLastError();
    throw std::runtime_error("ordo::cuda::device_description(" + std::to_string(index) +
                             "): " + cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
  }
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
         std::to_string(prop.totalGlobalMem >> 20) + " MiB)";
}

int runtime_version() noexcept {
  int version = 0;
  if (cudaRuntimeGetVersion(&version) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return version;
}

}  // namespace ordo::cuda
