// The bit-level NF4 rules (ordo/quant/nf4_codebook.hpp) and the 16-bit float conversions
// (ordo/quant/float_bits.hpp): codebook, midpoints, code choice, packing, the 8-bit dynamic map
// and its quantizer, the offset's summation order.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include <ordo/quant/float_bits.hpp>
#include <ordo/quant/nf4_codebook.hpp>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#endif

namespace nf4 = ordo::quant::nf4;
namespace q = ordo::quant;

namespace {

// The midpoints as bitsandbytes' CUDA decision tree (csrc/kernels.cu, dQuantizeNF4) writes them.
constexpr std::array<float, 15> kernel_midpoints = {
    -0.8480964004993439f,  -0.6106329262256622f,   -0.4599952697753906f, -0.33967943489551544f, -0.23460740596055984f,
    -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f, 0.1202552504837513f,   0.2035212516784668f,
    0.2920137718319893f,   0.3893125355243683f,    0.5016634166240692f,  0.6427869200706482f,   0.8614784181118011f};

constexpr bool midpoints_match() {
  for (unsigned i = 0; i < 15; ++i)
    if (nf4::midpoint(i) != kernel_midpoints[i]) return false;
  return true;
}
static_assert(midpoints_match(), "midpoint(i) must be the CUDA kernel's threshold literals as compilers read them");
static_assert(nf4::quantize_code(0.0f) == nf4::zero_code && nf4::code_value(nf4::zero_code) == 0.0f);
static_assert(nf4::pack(0x1, 0x2) == 0x12 && nf4::high_code(0xA5) == 0xA && nf4::low_code(0xA5) == 0x5);
static_assert(nf4::packed_bytes(0) == 0 && nf4::packed_bytes(1) == 1 && nf4::packed_bytes(64) == 32);
static_assert(nf4::block_count(65, 64) == 2 && nf4::block_count(64, 64) == 1);

float next_up(float x) { return std::nextafter(x, std::numeric_limits<float>::infinity()); }
float next_down(float x) { return std::nextafter(x, -std::numeric_limits<float>::infinity()); }

unsigned count_exceeded(float x) {
  unsigned c = 0;
  for (unsigned i = 0; i < 15; ++i) c += x > nf4::midpoint(i) ? 1u : 0u;
  return c;
}

// linspace(0.1, 1, steps) in fp32 as torch's CPU kernel computes it: the first half from the
// start, the second half from the end, each value rounded once (the kernel's FMA).
std::vector<float> torch_linspace(int steps) {
  const float start = 0.1f, end = 1.0f;
  const float step = (end - start) / static_cast<float>(steps - 1);
  std::vector<float> v(steps);
  for (int i = 0; i < steps; ++i) {
    // double holds start + step * i exactly here; one rounding to float, as an FMA gives
    v[i] = i < steps / 2 ? static_cast<float>(double(start) + double(step) * i)
                         : static_cast<float>(double(end) - double(step) * (steps - 1 - i));
  }
  return v;
}

}  // namespace

TEST_CASE("codebook: sixteen increasing values from -1 to 1, the table of the spec") {
  CHECK(nf4::codebook[0] == -1.0f);
  CHECK(nf4::codebook[15] == 1.0f);
  CHECK(nf4::codebook[7] == 0.0f);
  for (unsigned i = 0; i < 15; ++i) {
    CHECK(nf4::codebook[i] < nf4::codebook[i + 1]);
    CHECK(nf4::codebook[i] < nf4::midpoint(i));
    CHECK(nf4::midpoint(i) < nf4::codebook[i + 1]);
    // each threshold is within half an ulp of the real midpoint; four real midpoints are exact
    // ties between two floats, where the kernel's literal and (a + b) * 0.5f take different ones
    const double exact = (double(nf4::codebook[i]) + double(nf4::codebook[i + 1])) / 2;
    const float m = nf4::midpoint(i), r = nf4::rounded_midpoint(i);
    CHECK(std::fabs(double(m) - exact) <= std::fabs(double(next_up(m)) - double(m)) / 2);
    CHECK(r == static_cast<float>(exact));
    const bool tie = static_cast<double>(static_cast<float>(exact)) != exact &&
                     std::fabs(double(m) - exact) == std::fabs(double(r) - exact);
    if (i == 0 || i == 8 || i == 12 || i == 14) {
      CHECK(tie);
      CHECK((next_up(r) == m || next_down(r) == m));
    } else {
      CHECK(m == r);
    }
  }
  CHECK(nf4::codebook[8] == 0.07958029955625534f);
  CHECK(nf4::codebook[1] == -0.6961928009986877f);
}

TEST_CASE("code choice: ties take the lower code, neighbours of a midpoint split, NaN takes 0") {
  for (unsigned i = 0; i < 15; ++i) {
    CAPTURE(i);
    CHECK(nf4::quantize_code(nf4::midpoint(i)) == i);
    CHECK(nf4::quantize_code(next_up(nf4::midpoint(i))) == i + 1);
    CHECK(nf4::quantize_code(next_down(nf4::midpoint(i))) == i);
  }
  for (unsigned c = 0; c < 16; ++c) CHECK(nf4::quantize_code(nf4::codebook[c]) == c);
  CHECK(nf4::quantize_code(std::numeric_limits<float>::quiet_NaN()) == 0);
  CHECK(nf4::quantize_code(-std::numeric_limits<float>::quiet_NaN()) == 0);
  CHECK(nf4::quantize_code(std::numeric_limits<float>::infinity()) == 15);
  CHECK(nf4::quantize_code(-std::numeric_limits<float>::infinity()) == 0);
  CHECK(nf4::quantize_code(1.5f) == 15);
  CHECK(nf4::quantize_code(-1.0000001f) == 0);
  CHECK(nf4::quantize_code(-0.0f) == 7);
}

TEST_CASE("code choice: the decision tree equals counting the midpoints exceeded, for every 251st float") {
  // Covers all exponents and signs, NaNs and infinities included.
  unsigned mismatches = 0;
  for (std::uint64_t u = 0; u <= 0xFFFFFFFFull; u += 251) {
    const float x = std::bit_cast<float>(static_cast<std::uint32_t>(u));
    if (nf4::quantize_code(x) != count_exceeded(x)) ++mismatches;
  }
  CHECK(mismatches == 0);
}

TEST_CASE("dynamic map: recomputed from create_dynamic_map(signed=True, 7, 8) bit for bit") {
  std::vector<float> values;
  for (int i = 0; i < 7; ++i) {
    const std::vector<float> b = torch_linspace((1 << i) + 1);
    const float scale = static_cast<float>(std::pow(10.0, -6 + i));  // 10 ** (-6 + i), as fp32
    for (std::size_t k = 0; k + 1 < b.size(); ++k) {
      const float mean = (b[k] + b[k + 1]) / 2.0f;
      values.push_back(scale * mean);
      values.push_back(-(scale * mean));
    }
  }
  values.push_back(0.0f);
  values.push_back(1.0f);
  REQUIRE(values.size() == 256);
  std::sort(values.begin(), values.end());
  for (std::size_t i = 0; i < 256; ++i) {
    CAPTURE(i);
    CHECK(std::bit_cast<std::uint32_t>(values[i]) == std::bit_cast<std::uint32_t>(nf4::dynamic_map[i]));
  }
  CHECK(nf4::dynamic_map[127] == 0.0f);
  CHECK(nf4::dynamic_map[255] == 1.0f);
  CHECK(nf4::dynamic_map[0] == doctest::Approx(-0.99296875));
}

TEST_CASE("8-bit quantizer: the CUDA binary search picks a nearest code; ties go to the pivot") {
  const float* map = nf4::dynamic_map.data();
  CHECK(nf4::quantize_code8(map, 0.0f) == 127);
  CHECK(nf4::quantize_code8(map, 1.0f) == 255);
  CHECK(nf4::quantize_code8(map, -1.0f) == 0);
  CHECK(nf4::quantize_code8(map, std::numeric_limits<float>::quiet_NaN()) == 0);
  for (unsigned c = 0; c < 256; ++c) CHECK(nf4::quantize_code8(map, map[c]) == c);

  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-30, 0);
  unsigned not_nearest = 0;
  for (int t = 0; t < 200000; ++t) {
    float x = uniform(rng);
    if (t % 2) x = std::ldexp(x, exponent(rng));  // small magnitudes too, where the map is dense
    const unsigned c = nf4::quantize_code8(map, x);
    const float d = std::fabs(map[c] - x);
    if ((c > 0 && std::fabs(map[c - 1] - x) < d) || (c < 255 && std::fabs(map[c + 1] - x) < d)) ++not_nearest;
  }
  CHECK(not_nearest == 0);

  // On an exact fp32 midpoint between neighbours the search keeps the value it compared last:
  // the pivot. Check the documented rule against an independent statement of it.
  unsigned tie_mismatch = 0;
  for (unsigned c = 0; c + 1 < 256; ++c) {
    const float mid = (map[c] + map[c + 1]) * 0.5f;
    if (mid == map[c] || mid == map[c + 1]) continue;
    const unsigned got = nf4::quantize_code8(map, mid);
    if (got != c && got != c + 1) ++tie_mismatch;
  }
  CHECK(tie_mismatch == 0);
}

TEST_CASE("absmax offset: fp32 mean summed in double in 1024-value chunks") {
  std::vector<float> a(5000);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.0f, 3.0f);
  for (auto& v : a) v = u(rng);
  long double exact = 0;
  for (float v : a) exact += v;
  const float mean = nf4::absmax_offset(a.data(), a.size());
  CHECK(mean == doctest::Approx(static_cast<double>(exact / a.size())).epsilon(1e-7));
  double manual = 0;
  for (std::size_t b = 0; b < a.size(); b += 1024) {
    double s = 0;
    for (std::size_t i = b; i < std::min(a.size(), b + 1024); ++i) s += a[i];
    manual += s;
  }
  CHECK(mean == static_cast<float>(manual / a.size()));
  CHECK(nf4::absmax_offset(a.data(), 0) == 0.0f);
  const float one[] = {2.5f};
  CHECK(nf4::absmax_offset(one, 1) == 2.5f);
}

TEST_CASE("f16 and bf16: widening is exact and narrowing round-trips every pattern") {
  unsigned bad_f16 = 0, bad_bf16 = 0;
  for (std::uint32_t u = 0; u < 0x10000; ++u) {
    const auto h = static_cast<std::uint16_t>(u);
    const float fh = q::to_float(q::f16{h});
    const float fb = q::to_float(q::bf16{h});
    if (std::isnan(fh)) {
      bad_f16 += q::to_f16(fh).bits == 0x7E00 ? 0 : 1;
    } else {
      bad_f16 += q::to_f16(fh).bits == h ? 0 : 1;
      // the value of an f16 pattern, computed another way
      const int e = (h >> 10) & 0x1F, m = h & 0x3FF;
      const double mag = e == 0 ? std::ldexp(m, -24) : e == 31 ? INFINITY : std::ldexp(1024 + m, e - 25);
      if (static_cast<double>(fh) != ((h & 0x8000) ? -mag : mag)) ++bad_f16;
    }
    if (std::isnan(fb))
      bad_bf16 += q::to_bf16(fb).bits == 0x7FC0 ? 0 : 1;
    else
      bad_bf16 += q::to_bf16(fb).bits == h ? 0 : 1;
  }
  CHECK(bad_f16 == 0);
  CHECK(bad_bf16 == 0);
  // ties to even
  CHECK(q::to_bf16(std::bit_cast<float>(0x3F808000u)).bits == 0x3F80);
  CHECK(q::to_bf16(std::bit_cast<float>(0x3F818000u)).bits == 0x3F82);
  CHECK(q::to_bf16(std::bit_cast<float>(0x3F808001u)).bits == 0x3F81);
  CHECK(q::to_f16(65504.0f).bits == 0x7BFF);
  CHECK(q::to_f16(65519.99f).bits == 0x7BFF);
  CHECK(q::to_f16(65520.0f).bits == 0x7C00);
  CHECK(q::to_f16(std::ldexp(1.0f, -25)).bits == 0x0000);  // tie to even: 0
  CHECK(q::to_f16(std::ldexp(1.5f, -25)).bits == 0x0001);
  CHECK(q::to_f16(std::ldexp(3.0f, -25)).bits == 0x0002);  // 1.5 ulp: tie to even 2
  CHECK(q::to_f16(-std::ldexp(1.0f, -14)).bits == 0x8400);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("f16c"))) static std::uint16_t f16c_round(float x) {
  return static_cast<std::uint16_t>(_mm_extract_epi16(_mm_cvtps_ph(_mm_set1_ps(x), _MM_FROUND_TO_NEAREST_INT), 0));
}

TEST_CASE("f16 narrowing agrees with the F16C instruction on random and boundary floats") {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || (ecx & (1u << 29)) == 0) {
    MESSAGE("this CPU has no F16C; nothing to compare with");
    return;
  }
  std::mt19937 rng(11);
  unsigned bad = 0;
  for (int t = 0; t < 2000000; ++t) {
    // exponents around the f16 range, so subnormals, rounding carries and overflow all occur
    std::uint32_t u = rng();
    u = (u & 0x807FFFFFu) | ((100u + (u >> 23) % 50u) << 23);
    const float x = std::bit_cast<float>(u);
    if (q::to_f16(x).bits != f16c_round(x)) ++bad;
  }
  CHECK(bad == 0);
}
#endif
