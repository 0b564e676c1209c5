// ordo::kernels' device discovery: on a machine without a GPU (or driver) it reports none,
// with the reason, and never throws; with a GPU it describes each device.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include <ordo/kernels/device.hpp>

TEST_CASE("device_count reports devices, or none with a reason") {
  const int n = ordo::cuda::device_count();
  const std::string error = ordo::cuda::device_query_error();
  // The query is repeatable: an error does not stick to the runtime (device.cu clears it).
  CHECK(ordo::cuda::device_count() == n);
  CHECK(ordo::cuda::device_query_error() == error);
  if (n == 0) {
    CHECK_FALSE(ordo::cuda::device_query_error().empty());
    MESSAGE("no CUDA device: " << ordo::cuda::device_query_error());
  } else {
    CHECK(ordo::cuda::device_query_error().empty());
    for (int i = 0; i < n; ++i) {
      const std::string d = ordo::cuda::device_description(i);
      MESSAGE(d);
      CHECK(d.find("(sm_") != std::string::npos);
    }
  }
  CHECK_THROWS_AS((void)ordo::cuda::device_description(n + 1000), std::runtime_error);
}

TEST_CASE("runtime_version is the toolkit the kernels were built with") {
  const int v = ordo::cuda::runtime_version();
  CHECK(v >= 11000);  // CUDA 11 or newer (the project builds with CUDA 13)
}
