// ordo/kernels/device.hpp — host-only declarations of what the separately compiled CUDA library
// (target ordo::kernels, kernels/*.cu) exports. Safe to include from any C++ translation unit:
// no CUDA header is needed. Link ordo::kernels to use it; it exists when nvcc was found at
// configure time (ORDO_HAVE_KERNELS is then defined to 1 for code linking it).
#pragma once

#include <string>  // std::string

namespace ordo::cuda {

/// Number of CUDA devices usable by this process; 0 when there is no driver, no device, or the
/// runtime reports an error (the reason is then in `device_query_error()`). Never throws.
int device_count() noexcept;

/// Why the last `device_count()` found no device ("" when it found one).
std::string device_query_error();

/// "name (sm_XY, N MiB)" for device `index`; throws std::runtime_error naming the CUDA error.
std::string device_description(int index);

/// Version of the CUDA runtime the kernels were built against, as 1000 * major + 10 * minor.
int runtime_version() noexcept;

}  // namespace ordo::cuda
