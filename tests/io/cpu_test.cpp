// The CPUs a tool may use, and the warning for OpenBLAS on kernels older than the CPU
// (ordo/io/cpu.hpp).
#include <doctest/doctest.h>

#include <string>

#include <ordo/io/cpu.hpp>

TEST_CASE("usable and idle CPUs: at least one, idle ones among the usable") {
  const int usable = ordo::io::usable_cpus();
  CHECK(usable >= 1);
  const int idle = ordo::io::idle_cpus(std::chrono::milliseconds(50));
  CHECK(idle >= 1);
  CHECK(idle <= usable);
}

TEST_CASE("OpenBLAS's generic kernels on an AVX2 or AVX-512 CPU are worth a warning, nothing else is") {
  using ordo::io::slow_blas_warning;
  const auto avx512 = slow_blas_warning("Prescott", true, true);
  REQUIRE(avx512);
  CHECK(avx512->find("OpenBLAS runs its generic Prescott kernels on this AVX-512 CPU") == 0);
  CHECK(avx512->find("OPENBLAS_CORETYPE=SkylakeX") != std::string::npos);
  const auto avx2 = slow_blas_warning("prescott", true, false);  // the name's case does not matter
  REQUIRE(avx2);
  CHECK(avx2->find("OPENBLAS_CORETYPE=Haswell") != std::string::npos);
  CHECK_FALSE(slow_blas_warning("Prescott", false, false));  // an old CPU: the kernels fit it
  CHECK_FALSE(slow_blas_warning("SkylakeX", true, true));
  CHECK_FALSE(slow_blas_warning("Haswell", true, false));
  CHECK_FALSE(slow_blas_warning("", true, true));  // no OpenBLAS in the process (MKL, or no LibTorch)
}

TEST_CASE("a process without OpenBLAS has no BLAS core name") {
  // This test links no BLAS; the lookup finds nothing and says so, it does not fail.
  CHECK(ordo::io::blas_core().empty());
  CHECK_FALSE(ordo::io::slow_blas_warning());
}
