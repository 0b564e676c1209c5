// The NF4 CUDA kernels (kernels/nf4.cu) against ordo's CPU path: the same bytes, absmax,
// double-quantization statistics and dequantized values, bit for bit; GEMV within fp32
// accumulation error. Without a usable CUDA device the program skips (skip_test: ctest reports
// it as Skipped, with the reason). The fixtures are tests/quant's (nf4_fixture.hpp).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <ordo/kernels/device.hpp>
#include <ordo/kernels/nf4.hpp>
#include <ordo/quant/nf4_cpu.hpp>

#include "../test_support.hpp"  // skip_test
#include "nf4_fixture.hpp"      // tests/quant/

namespace cnf4 = ordo::cuda::nf4;
namespace nf4 = ordo::quant::nf4;

namespace {

void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// Device memory holding a copy of a host vector (or `bytes` uninitialised bytes).
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    cuda_check(cudaMalloc(&ptr_, bytes ? bytes : 1), "cudaMalloc");
  }
  template <class T>
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size() * sizeof(T)) {
    if (bytes_) cuda_check(cudaMemcpy(ptr_, host.data(), bytes_, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(ptr_); }
  template <class T = void>
  T* get() const {
    return static_cast<T*>(ptr_);
  }
  template <class T>
  std::vector<T> to_host(std::size_t count) const {
    cuda_check(cudaDeviceSynchronize(), "kernel");
    std::vector<T> v(count);
    if (count) cuda_check(cudaMemcpy(v.data(), ptr_, count * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
    return v;
  }

 private:
  void* ptr_ = nullptr;
  std::size_t bytes_;
};

std::vector<float> test_values(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.5f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  // zeros, NaN and Inf in some blocks, so the rules for them run on the device too
  for (std::size_t i = 64; i < std::min<std::size_t>(n, 128); ++i) v[i] = 0.0f;
  if (n > 200) v[200] = std::numeric_limits<float>::quiet_NaN();
  if (n > 300) v[300] = std::numeric_limits<float>::infinity();
  return v;
}

template <class T>
std::vector<T> as(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = ordo::quant::from_float<T>(v[i]);
  return out;
}

template <class T>
constexpr cnf4::Dtype dtype_of() {
  if constexpr (std::is_same_v<T, float>)
    return cnf4::Dtype::f32;
  else if constexpr (std::is_same_v<T, nf4::f16>)
    return cnf4::Dtype::f16;
  else
    return cnf4::Dtype::bf16;
}

// The fixtures' dtype codes: 0 f32, 1 f16, 2 bf16.
cnf4::Dtype fixture_dtype(std::uint32_t code) {
  return code == 0 ? cnf4::Dtype::f32 : code == 1 ? cnf4::Dtype::f16 : cnf4::Dtype::bf16;
}

template <class T>
bool same_bytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

// Equal bit patterns, except that any two NaNs count as equal: the CPU's and the GPU's default
// NaN differ in sign and payload (f16/bf16 outputs are canonical already).
bool same_values(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], 4) != 0 && !(std::isnan(a[i]) && std::isnan(b[i]))) return false;
  return true;
}
template <class T>
bool same_values(const std::vector<T>& a, const std::vector<T>& b) {
  return same_bytes(a, b);
}

template <class T>
void check_quantize_matches_cpu(std::size_t n, std::size_t bs, nf4::ZeroBlocks zb) {
  CAPTURE(n);
  CAPTURE(bs);
  const std::vector<T> x = as<T>(test_values(n, static_cast<unsigned>(n + bs)));
  std::vector<std::uint8_t> want_packed(nf4::packed_bytes(n));
  std::vector<float> want_absmax(nf4::block_count(n, bs));
  nf4::quantize_blocks(x.data(), n, want_packed.data(), want_absmax.data(),
                       {.blocksize = bs, .zero_blocks = zb, .isa = nf4::Isa::portable});

  DeviceBuffer dx(x), dpacked(want_packed.size()), dabsmax(want_absmax.size() * sizeof(float));
  cnf4::quantize(dx.get(), dtype_of<T>(), n, bs, dpacked.get<std::uint8_t>(), dabsmax.get<float>(), nullptr, zb);
  CHECK(same_bytes(dpacked.to_host<std::uint8_t>(want_packed.size()), want_packed));
  CHECK(same_bytes(dabsmax.to_host<float>(want_absmax.size()), want_absmax));

  // dequantize on the device from the device's own output, in this dtype
  std::vector<T> want_y(n);
  nf4::dequantize_blocks(want_packed.data(), want_absmax.data(), n, want_y.data(),
                         {.blocksize = bs, .isa = nf4::Isa::portable});
  DeviceBuffer dy(n * sizeof(T));
  cnf4::dequantize(dpacked.get<std::uint8_t>(), dabsmax.get<float>(), n, bs, dy.get(), dtype_of<T>(), nullptr);
  CHECK(same_values(dy.to_host<T>(n), want_y));
}

}  // namespace

TEST_CASE("quantize and dequantize on the device give the CPU path's bytes") {
  for (std::size_t bs : {32u, 64u, 128u, 256u, 512u, 1024u, 2048u, 4096u}) {
    for (std::size_t n : {std::size_t{1}, std::size_t{3}, bs - 1, bs, bs + 1, 5 * bs + 7, std::size_t{70001}}) {
      check_quantize_matches_cpu<float>(n, bs, nf4::ZeroBlocks::zero_code);
      check_quantize_matches_cpu<nf4::f16>(n, bs, nf4::ZeroBlocks::zero_code);
      check_quantize_matches_cpu<nf4::bf16>(n, bs, nf4::ZeroBlocks::zero_code);
    }
  }
  check_quantize_matches_cpu<float>(1000, 64, nf4::ZeroBlocks::cuda);
}

TEST_CASE("the kernels on bitsandbytes' fixture: the CUDA rule's bytes, and bitsandbytes' dequantized values") {
  // fixtures/nf4_bitsandbytes.bin: exact ties, divide-vs-multiply tails, NaN/Inf, subnormal and
  // zero blocks, every blocksize and dtype. The "cuda" columns are bitsandbytes' CUDA kernels'
  // rule (checked against bitsandbytes on a GPU by check_nf4_fixture_cuda.py); the dequantized
  // values are what bitsandbytes returns for its own bytes.
  namespace fx = ordo_test::nf4_fixture;
  for (const fx::Case& k : fx::fixture().cases) {
    CAPTURE(k.name);
    const cnf4::Dtype dt = fixture_dtype(k.dtype);
    DeviceBuffer dx = k.dtype == 0 ? DeviceBuffer(k.x) : DeviceBuffer(k.x16);
    DeviceBuffer dpacked(k.cuda_packed.size()), dabsmax(k.cuda_absmax.size() * sizeof(float));
    cnf4::quantize(dx.get(), dt, k.n, k.blocksize, dpacked.get<std::uint8_t>(), dabsmax.get<float>(), nullptr,
                   nf4::ZeroBlocks::cuda);
    CHECK(same_bytes(dpacked.to_host<std::uint8_t>(k.cuda_packed.size()), k.cuda_packed));
    CHECK(same_values(dabsmax.to_host<float>(k.cuda_absmax.size()), k.cuda_absmax));

    DeviceBuffer bpacked(k.bnb_packed), babsmax(k.bnb_absmax), dy(k.n * (k.dtype == 0 ? 4 : 2));
    cnf4::dequantize(bpacked.get<std::uint8_t>(), babsmax.get<float>(), k.n, k.blocksize, dy.get(), dt, nullptr);
    if (k.dtype == 0)
      CHECK(same_values(dy.to_host<float>(k.n), k.bnb_dequant32));
    else
      CHECK(same_bytes(dy.to_host<std::uint16_t>(k.n), k.bnb_dequant16));
  }
}

TEST_CASE("double quantization on the device: offset, codes, absmax2 and the reconstruction equal the CPU's") {
  for (std::size_t blocks : {std::size_t{1}, std::size_t{255}, std::size_t{256}, std::size_t{2500}}) {
    CAPTURE(blocks);
    std::mt19937 rng(static_cast<unsigned>(blocks));
    std::uniform_real_distribution<float> u(0.01f, 0.2f);
    std::vector<float> absmax(blocks);
    for (auto& a : absmax) a = u(rng);
    const float want_offset = nf4::absmax_offset(absmax.data(), blocks);
    std::vector<std::uint8_t> want_codes(blocks);
    std::vector<float> want_absmax2(nf4::absmax2_count(blocks)), want_scales(blocks);
    nf4::quantize_absmax(absmax.data(), blocks, want_offset, want_codes.data(), want_absmax2.data());
    nf4::dequantize_absmax(want_codes.data(), want_absmax2.data(), blocks, want_offset, want_scales.data());

    DeviceBuffer dabsmax(absmax), doffset(sizeof(float)), dcodes(blocks), dabsmax2(want_absmax2.size() * 4),
        dwork(cnf4::quantize_absmax_workspace_bytes(blocks)), dscales(blocks * 4);
    cnf4::quantize_absmax(dabsmax.get<float>(), blocks, doffset.get<float>(), dcodes.get<std::uint8_t>(),
                          dabsmax2.get<float>(), dwork.get(), nullptr);
    cnf4::dequantize_absmax(dcodes.get<std::uint8_t>(), dabsmax2.get<float>(), doffset.get<float>(), blocks,
                            dscales.get<float>(), nullptr);
    CHECK(same_bytes(doffset.to_host<float>(1), std::vector<float>{want_offset}));
    CHECK(same_bytes(dcodes.to_host<std::uint8_t>(blocks), want_codes));
    CHECK(same_bytes(dabsmax2.to_host<float>(want_absmax2.size()), want_absmax2));
    CHECK(same_bytes(dscales.to_host<float>(blocks), want_scales));
  }
}

TEST_CASE("GEMV on the device agrees with the CPU GEMV, with aligned and unaligned weights") {
  const std::size_t rows = 300, cols = 4096, bs = 64;
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 0.05f);
  std::vector<float> w(rows * cols), x(cols);
  for (auto& v : w) v = d(rng);
  for (auto& v : x) v = d(rng) * 20;
  const auto q = nf4::quantize(std::span<const float>(w), {.blocksize = bs}, false);
  std::vector<float> want(rows);
  nf4::gemv(q, rows, cols, x.data(), want.data(), {.isa = nf4::Isa::portable});
  for (std::size_t shift : {std::size_t{0}, std::size_t{8}}) {
    CAPTURE(shift);
    std::vector<std::uint8_t> bytes(shift, 0);
    bytes.insert(bytes.end(), q.packed.begin(), q.packed.end());
    DeviceBuffer dw(bytes), dabsmax(q.absmax), dx(x), dy(rows * 4);
    cnf4::gemv(dw.get<std::uint8_t>() + shift, dabsmax.get<float>(), rows, cols, bs, dx.get<float>(), dy.get<float>(),
               nullptr);
    const auto y = dy.to_host<float>(rows);
    for (std::size_t r = 0; r < rows; ++r) {
      double mag = 0;
      for (std::size_t k = 0; k < cols; ++k) mag += std::fabs(double(w[r * cols + k]) * x[k]);
      CHECK(std::fabs(y[r] - want[r]) <= 2e-5 * mag);
    }
  }
}

TEST_CASE("Arithmetic::fast_math gives bitsandbytes' CUDA bytes and absmax (fixture made on a GPU)") {
  namespace fx = ordo_test::nf4_fixture;
  std::size_t differ_from_exact = 0;
  for (const fx::CudaCase& k : fx::cuda_fixture()) {
    CAPTURE(k.name);
    const cnf4::Dtype dt = fixture_dtype(k.dtype);
    DeviceBuffer dx = k.dtype == 0 ? DeviceBuffer(k.x) : DeviceBuffer(k.x16);
    DeviceBuffer dpacked(k.packed.size()), dabsmax(k.absmax.size() * sizeof(float));
    cnf4::quantize(dx.get(), dt, k.n, k.blocksize, dpacked.get<std::uint8_t>(), dabsmax.get<float>(), nullptr,
                   nf4::ZeroBlocks::cuda, cnf4::Arithmetic::fast_math);
    CHECK(same_bytes(dpacked.to_host<std::uint8_t>(k.packed.size()), k.packed));
    CHECK(same_values(dabsmax.to_host<float>(k.absmax.size()), k.absmax));
    cnf4::quantize(dx.get(), dt, k.n, k.blocksize, dpacked.get<std::uint8_t>(), dabsmax.get<float>(), nullptr,
                   nf4::ZeroBlocks::cuda, cnf4::Arithmetic::exact);
    const auto exact = dpacked.to_host<std::uint8_t>(k.packed.size());
    for (std::size_t j = 0; j < exact.size(); ++j) differ_from_exact += exact[j] != k.packed[j];
  }
  MESSAGE("bytes where the exact rule differs from bitsandbytes' fast math: " << differ_from_exact);
}

TEST_CASE("fast math and exact quantization differ only by one code, next to a threshold, on ordinary weights") {
  const std::size_t n = std::size_t{1} << 22, bs = 64;
  std::mt19937 rng(11);
  std::normal_distribution<float> d(0.0f, 0.02f);
  std::vector<float> x(n);
  for (auto& v : x) v = d(rng);
  DeviceBuffer dx(x), pa(n / 2), pb(n / 2), aa(n / bs * 4), ab(n / bs * 4);
  cnf4::quantize(dx.get(), cnf4::Dtype::f32, n, bs, pa.get<std::uint8_t>(), aa.get<float>(), nullptr,
                 nf4::ZeroBlocks::cuda, cnf4::Arithmetic::exact);
  cnf4::quantize(dx.get(), cnf4::Dtype::f32, n, bs, pb.get<std::uint8_t>(), ab.get<float>(), nullptr,
                 nf4::ZeroBlocks::cuda, cnf4::Arithmetic::fast_math);
  const auto exact = pa.to_host<std::uint8_t>(n / 2), fast = pb.to_host<std::uint8_t>(n / 2);
  const auto absmax = aa.to_host<float>(n / bs);
  CHECK(same_bytes(absmax, ab.to_host<float>(n / bs)));
  std::size_t differing = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const unsigned e = i % 2 ? nf4::low_code(exact[i / 2]) : nf4::high_code(exact[i / 2]);
    const unsigned f = i % 2 ? nf4::low_code(fast[i / 2]) : nf4::high_code(fast[i / 2]);
    if (e == f) continue;
    ++differing;
    CAPTURE(i);
    REQUIRE((e + 1 == f || f + 1 == e));
    const float p = x[i] * (1.0f / absmax[i / bs]), mid = nf4::midpoint(std::min(e, f));
    CHECK(std::fabs(p - mid) <= 2 * (std::nextafter(std::fabs(mid), 2.0f) - std::fabs(mid)));
  }
  MESSAGE("codes differing between exact and fast math: " << differing << " of " << n);
  CHECK(differing < n / 10000);
}

TEST_CASE("dequantize into unaligned output and odd lengths takes the scalar path with the same values") {
  const std::size_t n = 4099, bs = 64;
  const std::vector<float> x = test_values(n, 3);
  std::vector<std::uint8_t> packed(nf4::packed_bytes(n));
  std::vector<float> absmax(nf4::block_count(n, bs));
  nf4::quantize_blocks(x.data(), n, packed.data(), absmax.data(), {.blocksize = bs, .isa = nf4::Isa::portable});
  std::vector<float> want(n);
  nf4::dequantize_blocks(packed.data(), absmax.data(), n, want.data(), {.blocksize = bs, .isa = nf4::Isa::portable});
  DeviceBuffer dpacked(packed), dabsmax(absmax), dy((n + 4) * sizeof(float));
  for (std::size_t shift : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
    CAPTURE(shift);
    cnf4::dequantize(dpacked.get<std::uint8_t>(), dabsmax.get<float>(), n, bs, dy.get<float>() + shift,
                     cnf4::Dtype::f32, nullptr);
    const auto all = dy.to_host<float>(n + shift);
    CHECK(same_values(std::vector<float>(all.begin() + static_cast<std::ptrdiff_t>(shift), all.end()), want));
  }
}

TEST_CASE("GEMV on the device: short row groups, rows shorter than a step, unaligned x") {
  struct Shape {
    std::size_t rows, cols, bs;
  };
  for (const Shape s :
       {Shape{1, 32, 32}, Shape{7, 96, 32}, Shape{301, 4160, 64}, Shape{5, 8192, 4096}, Shape{33, 1056, 32}}) {
    CAPTURE(s.rows);
    CAPTURE(s.cols);
    std::mt19937 rng(static_cast<unsigned>(s.rows * 31 + s.cols));
    std::normal_distribution<float> d(0.0f, 0.05f);
    std::vector<float> w(s.rows * s.cols), x(s.cols + 1);
    for (auto& v : w) v = d(rng);
    for (auto& v : x) v = d(rng) * 20;
    const auto q = nf4::quantize(std::span<const float>(w), {.blocksize = s.bs}, false);
    for (std::size_t xshift : {std::size_t{0}, std::size_t{1}}) {
      CAPTURE(xshift);
      std::vector<float> want(s.rows);
      nf4::gemv(q, s.rows, s.cols, x.data() + xshift, want.data(), {.isa = nf4::Isa::portable});
      DeviceBuffer dw(q.packed), dabsmax(q.absmax), dx(x), dy(s.rows * 4);
      cnf4::gemv(dw.get<std::uint8_t>(), dabsmax.get<float>(), s.rows, s.cols, s.bs, dx.get<float>() + xshift,
                 dy.get<float>(), nullptr);
      const auto y = dy.to_host<float>(s.rows);
      for (std::size_t r = 0; r < s.rows; ++r) {
        double mag = 0;
        for (std::size_t k = 0; k < s.cols; ++k) mag += std::fabs(double(w[r * s.cols + k]) * x[k + xshift]);
        CHECK(std::fabs(y[r] - want[r]) <= 2e-5 * mag + 1e-30);
      }
    }
  }
}

TEST_CASE("invalid arguments are reported before any launch") {
  DeviceBuffer buf(1024);
  CHECK_THROWS_WITH_AS(
      cnf4::quantize(buf.get(), cnf4::Dtype::f32, 10, 48, buf.get<std::uint8_t>(), buf.get<float>(), nullptr),
      doctest::Contains("ordo::cuda::nf4::quantize: blocksize 48"), std::invalid_argument);
  CHECK_THROWS_WITH_AS(
      cnf4::gemv(buf.get<std::uint8_t>(), buf.get<float>(), 2, 96, 64, buf.get<float>(), buf.get<float>(), nullptr),
      doctest::Contains("multiple of the blocksize"), std::invalid_argument);
  CHECK_THROWS_AS(cnf4::dequantize(nullptr, buf.get<float>(), 10, 64, buf.get(), cnf4::Dtype::f32, nullptr),
                  std::invalid_argument);
}

int main(int argc, char** argv) {
  if (ordo::cuda::device_count() == 0) skip_test("no CUDA device (" + ordo::cuda::device_query_error() + ")");
  std::printf("device: %s\n", ordo::cuda::device_description(0).c_str());
  doctest::Context context(argc, argv);
  return context.run();
}
