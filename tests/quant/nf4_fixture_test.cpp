// Bit-exactness against bitsandbytes: fixtures/nf4_bitsandbytes.bin, made by
// make_nf4_fixtures.py with bitsandbytes (PyPI) on a machine without a GPU. Each case holds the
// input, what bitsandbytes' CPU/default backend produced, and what the CUDA kernels' rule gives
// (an independent numpy model of kQuantizeBlockwise/dQuantizeNF4/dQuantize in the script).
//
// ordo follows the CUDA rule. Checked here:
//  1. ordo (ZeroBlocks::cuda) equals the CUDA rule in every byte and absmax of every case;
//  2. ordo (default) equals bitsandbytes' CPU bytes except where that backend is known to
//     differ from the CUDA rule, and each such byte is recomputed with the CPU backend's own
//     rule to show that this, and nothing else, is the difference:
//       - thresholds: the CPU backend bucketizes on (a + b) / 2 in fp32; the CUDA tree compares
//         with its decimal literals, and four of those are one ulp away (nf4_codebook.hpp), so a
//         value exactly there takes another code;
//       - tail block (n % blocksize != 0): the CPU backend divides x / absmax instead of
//         multiplying by 1/absmax; the two can round to different sides of a midpoint;
//       - NaN in a block: torch's max propagates NaN into absmax and bucketize sends NaN to
//         code 15, so the whole block packs 0xFF; the CUDA rule ignores NaN in absmax and gives
//         NaN code 0. Inf * (1/Inf) is NaN too: code 15 there, code 0 under the CUDA rule;
//       - absmax below FLT_MIN: the CPU backend clamps absmax to 1e-38 before dividing; the CUDA
//         rule's 1/absmax overflows to Inf;
//       - a zero tail block: the CPU backend stores the clamped absmax 1e-38, ordo stores 0;
//  3. dequantization of bitsandbytes' own bytes and absmax equals bitsandbytes' output exactly
//     (fp32, fp16 and bf16 outputs);
//  4. double quantization: given bitsandbytes' offset, ordo's 8-bit codes and second-level
//     absmax equal the CUDA rule exactly (also on every midpoint of the dynamic map and its
//     neighbours), and equal bitsandbytes' CPU codes except where its 65536-entry lookup table
//     picks a code at most one table step farther from the value than the nearest; ordo's own
//     offset (fixed summation order) is within 2 ulp of torch's mean; the dequantized scales
//     equal bitsandbytes' (two roundings: the product, then the offset).
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <ordo/quant/nf4_cpu.hpp>

namespace nf4 = ordo::quant::nf4;

#include "nf4_fixture.hpp"

namespace {

using namespace ordo_test::nf4_fixture;

bool same_bits(float a, float b) { return std::bit_cast<std::uint32_t>(a) == std::bit_cast<std::uint32_t>(b); }

// Runs ordo's quantizer on the case's input (a Case or a CudaCase) in its own dtype.
template <class AnyCase>
void ordo_quantize(const AnyCase& k, nf4::Options opt, std::vector<std::uint8_t>& packed, std::vector<float>& absmax) {
  opt.blocksize = k.blocksize;
  packed.assign(nf4::packed_bytes(k.n), 0);
  absmax.assign(nf4::block_count(k.n, k.blocksize), 0.0f);
  if (k.dtype == 0)
    nf4::quantize_blocks(k.x.data(), k.n, packed.data(), absmax.data(), opt);
  else if (k.dtype == 1)
    nf4::quantize_blocks(reinterpret_cast<const nf4::f16*>(k.x16.data()), k.n, packed.data(), absmax.data(), opt);
  else
    nf4::quantize_blocks(reinterpret_cast<const nf4::bf16*>(k.x16.data()), k.n, packed.data(), absmax.data(), opt);
}

// bitsandbytes' CPU/default backend (backends/default/ops.py quantize_4bit), element by element:
// torch max (NaN propagates), clamp(min=1e-38), multiply by the reciprocal for full blocks and
// divide for the tail block, clamp to [-1, 1], bucketize on the midpoints (NaN -> 15).
std::uint8_t cpu_backend_code(const Case& k, std::size_t i) {
  const std::size_t bs = k.blocksize, b = i / bs;
  const bool tail = k.n % bs != 0 && b == k.n / bs;
  float am = 0.0f;
  bool has_nan = false;
  for (std::size_t j = b * bs; j < std::min(k.n, b * bs + bs); ++j) {
    if (std::isnan(k.x[j])) has_nan = true;
    am = std::max(am, std::fabs(k.x[j]));
  }
  if (i >= k.n) return nf4::zero_code;  // the odd tail is padded after scaling: bucketize(0)
  const float x = k.x[i];
  if (has_nan) return 15;
  am = std::max(am, 1e-38f);
  float s = tail ? x / am : x * (1.0f / am);
  if (std::isnan(s)) return 15;
  s = std::min(1.0f, std::max(-1.0f, s));
  std::uint8_t code = 0;  // bucketize(s, (code[:-1] + code[1:]) / 2): boundaries strictly below s
  for (unsigned m = 0; m < 15; ++m) code += s > nf4::rounded_midpoint(m) ? 1 : 0;
  return code;
}

// True when element i, scaled by the CUDA rule, lies between one of the four thresholds where the
// kernel's literal and the CPU backend's rounded midpoint are one ulp apart (both included).
bool on_rounded_tie(const Case& k, std::size_t i, float absmax) {
  if (i >= k.n) return false;
  const float s = k.x[i] * (1.0f / absmax);
  for (unsigned m : {0u, 8u, 12u, 14u}) {
    const float a = nf4::midpoint(m), b = nf4::rounded_midpoint(m);
    if (s >= std::min(a, b) && s <= std::max(a, b)) return true;
  }
  return false;
}

// bitsandbytes' CPU quantize_blockwise looks scaled values up in a 65536-step table over [-1, 1]:
// its code is the nearest to some point within half a step of the value, so it is at most one
// step (2/65535) farther from the value than the nearest code. Where the map is denser than the
// table (small magnitudes) that can be several codes away.
bool within_lookup_table_step(float v, std::uint8_t nearest, std::uint8_t table_code) {
  const double d_nearest = std::fabs(double(nf4::dynamic_map[nearest]) - v);
  const double d_table = std::fabs(double(nf4::dynamic_map[table_code]) - v);
  return d_table <= d_nearest + 2.0 / 65535.0;
}

}  // namespace

TEST_CASE("fixture: bitsandbytes' maps equal ordo's tables") {
  const Fixture& f = fixture();
  REQUIRE(f.cases.size() >= 10);
  for (unsigned i = 0; i < 256; ++i) CHECK(same_bits(f.dynamic_map[i], nf4::dynamic_map[i]));
  for (unsigned i = 0; i < 16; ++i) CHECK(same_bits(f.nf4_code[i], nf4::codebook[i]));
}

TEST_CASE("fixture: ordo's bytes and absmax equal the CUDA kernels' rule in every case") {
  for (const Case& k : fixture().cases) {
    for (nf4::Isa isa : nf4::runnable_isas()) {
      CAPTURE(k.name);
      CAPTURE(static_cast<int>(isa));
      std::vector<std::uint8_t> packed;
      std::vector<float> absmax;
      ordo_quantize(k, {.zero_blocks = nf4::ZeroBlocks::cuda, .threads = 2, .isa = isa}, packed, absmax);
      CHECK(packed == k.cuda_packed);
      unsigned bad = 0;
      for (std::size_t b = 0; b < absmax.size(); ++b) bad += same_bits(absmax[b], k.cuda_absmax[b]) ? 0 : 1;
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("fixture: ordo equals bitsandbytes' CPU bytes but where its backend differs, and says which") {
  unsigned tail_divide = 0, nan_blocks = 0, clamped = 0, ties = 0, total_diff = 0;
  for (const Case& k : fixture().cases) {
    CAPTURE(k.name);
    std::vector<std::uint8_t> packed;
    std::vector<float> absmax;
    ordo_quantize(k, {}, packed, absmax);
    unsigned unexplained = 0;
    for (std::size_t j = 0; j < packed.size(); ++j) {
      if (packed[j] == k.bnb_packed[j]) continue;
      ++total_diff;
      const std::uint8_t want = nf4::pack(cpu_backend_code(k, 2 * j), cpu_backend_code(k, 2 * j + 1));
      if (want != k.bnb_packed[j]) {
        ++unexplained;
        continue;
      }
      // classify why the CPU backend's rule gave another byte
      const std::size_t b = 2 * j / k.blocksize;
      bool block_nan = false;
      for (std::size_t i = b * k.blocksize; i < std::min(k.n, (b + 1) * k.blocksize); ++i)
        block_nan |= std::isnan(k.x[i]) || std::isinf(k.x[i]);
      if (block_nan)
        ++nan_blocks;
      else if (absmax[b] < std::numeric_limits<float>::min())
        ++clamped;
      else if (on_rounded_tie(k, 2 * j, absmax[b]) || on_rounded_tie(k, 2 * j + 1, absmax[b]))
        ++ties;
      else if (k.n % k.blocksize != 0 && b == k.n / k.blocksize)
        ++tail_divide;
      else
        ++unexplained;
    }
    CHECK(unexplained == 0);
    // absmax: equal, but for NaN blocks (NaN in the CPU backend) and the clamped zero tail
    for (std::size_t b = 0; b < absmax.size(); ++b) {
      if (same_bits(absmax[b], k.bnb_absmax[b])) continue;
      CAPTURE(b);
      const bool cpu_nan = std::isnan(k.bnb_absmax[b]);
      const bool clamped_tail = k.bnb_absmax[b] == 1e-38f && absmax[b] == 0.0f;
      CHECK((cpu_nan || clamped_tail));
    }
  }
  MESSAGE("bytes that differ from bitsandbytes' CPU backend: "
          << total_diff << " (tail block divides: " << tail_divide << ", NaN/Inf blocks: " << nan_blocks
          << ", absmax below FLT_MIN: " << clamped << ", on the four rounded midpoints: " << ties << ")");
  // the fixtures were made to contain each kind of difference
  CHECK(tail_divide > 0);
  CHECK(nan_blocks > 0);
  CHECK(clamped > 0);
  CHECK(ties > 0);
}

TEST_CASE("fixture: dequantizing bitsandbytes' bytes gives bitsandbytes' values exactly") {
  for (const Case& k : fixture().cases) {
    CAPTURE(k.name);
    for (nf4::Isa isa : nf4::runnable_isas()) {
      const nf4::Options opt{.blocksize = k.blocksize, .isa = isa};
      unsigned bad = 0;
      if (k.dtype == 0) {
        std::vector<float> y(k.n);
        nf4::dequantize_blocks(k.bnb_packed.data(), k.bnb_absmax.data(), k.n, y.data(), opt);
        for (std::size_t i = 0; i < k.n; ++i)
          bad += same_bits(y[i], k.bnb_dequant32[i]) || (std::isnan(y[i]) && std::isnan(k.bnb_dequant32[i])) ? 0 : 1;
      } else {
        std::vector<std::uint16_t> y(k.n);
        if (k.dtype == 1)
          nf4::dequantize_blocks(k.bnb_packed.data(), k.bnb_absmax.data(), k.n, reinterpret_cast<nf4::f16*>(y.data()),
                                 opt);
        else
          nf4::dequantize_blocks(k.bnb_packed.data(), k.bnb_absmax.data(), k.n, reinterpret_cast<nf4::bf16*>(y.data()),
                                 opt);
        for (std::size_t i = 0; i < k.n; ++i) bad += y[i] == k.bnb_dequant16[i] ? 0 : 1;
      }
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("fixture: the 8-bit quantizer on every midpoint of the dynamic map and its neighbours") {
  const Fixture& f = fixture();
  const std::size_t m = f.ties8.size();
  REQUIRE(m == 3 * 255 + 3);
  std::vector<std::uint8_t> codes(m);
  std::vector<float> absmax2(nf4::absmax2_count(m));
  nf4::quantize_absmax(f.ties8.data(), m, 0.0f, codes.data(), absmax2.data());
  for (float a : absmax2) CHECK(a == 1.0f);  // each 256-block starts with 1.0: values are not rescaled
  CHECK(codes == f.ties8_cuda);              // exact ties included: the CUDA search's pivot rule
  unsigned differ = 0;
  for (std::size_t i = 0; i < m; ++i) {
    if (codes[i] == f.ties8_bnb[i]) continue;
    ++differ;
    CHECK(within_lookup_table_step(f.ties8[i], codes[i], f.ties8_bnb[i]));
  }
  MESSAGE(differ << " of " << m << " codes differ from bitsandbytes' CPU lookup table, each within a table step");
}

TEST_CASE(
    "fixture: double quantization equals the CUDA rule; bitsandbytes' CPU lookup table agrees but near midpoints") {
  unsigned compared = 0, lut_differences = 0;
  for (const Case& k : fixture().cases) {
    if (!k.nested) continue;
    CAPTURE(k.name);
    const std::size_t blocks = k.bnb_absmax.size();
    std::vector<std::uint8_t> codes(blocks);
    std::vector<float> absmax2(nf4::absmax2_count(blocks));
    nf4::quantize_absmax(k.bnb_absmax.data(), blocks, k.bnb_offset, codes.data(), absmax2.data());
    CHECK(codes == k.cuda_codes);
    CHECK(std::memcmp(absmax2.data(), k.cuda_absmax2.data(), absmax2.size() * 4) == 0);
    CHECK(std::memcmp(absmax2.data(), k.bnb_absmax2.data(), absmax2.size() * 4) == 0);
    for (std::size_t i = 0; i < blocks; ++i) {
      ++compared;
      if (codes[i] == k.bnb_codes[i]) continue;
      ++lut_differences;
      const float v = (k.bnb_absmax[i] - k.bnb_offset) * (1.0f / absmax2[i / 256]);
      CHECK(within_lookup_table_step(v, codes[i], k.bnb_codes[i]));
    }
    // ordo's offset: the same mean in a fixed summation order, within 2 ulp of torch's
    const float offset = nf4::absmax_offset(k.bnb_absmax.data(), blocks);
    const auto ulp = std::nextafter(k.bnb_offset, INFINITY) - k.bnb_offset;
    CHECK(std::fabs(offset - k.bnb_offset) <= 2 * ulp);
    // dequantized scales: bitsandbytes' dequantize_blockwise, then + offset
    std::vector<float> scales(blocks);
    nf4::dequantize_absmax(k.bnb_codes.data(), k.bnb_absmax2.data(), blocks, k.bnb_offset, scales.data());
    CHECK(std::memcmp(scales.data(), k.bnb_scales.data(), blocks * 4) == 0);
  }
  MESSAGE(compared << " 8-bit codes compared with bitsandbytes' CPU path; " << lut_differences
                   << " differ by its lookup table");
  CHECK(compared > 600);
}

TEST_CASE(
    "bitsandbytes' CUDA bytes (made on a GPU): ordo's exact rule differs only within an ulp of a threshold or where "
    "fast math flushes subnormals") {
  // bitsandbytes' kernels are built with --use_fast_math: an approximate 1/absmax, subnormals
  // flushed. ordo's CPU path keeps the correctly rounded reciprocal; each code that differs from
  // the GPU's must be a neighbour whose product x * (1/absmax) sits within 2 ulps of the
  // threshold between the two, or involve a subnormal (input, absmax, reciprocal or product).
  std::size_t near = 0, flushed = 0, total = 0;
  for (const CudaCase& k : cuda_fixture()) {
    CAPTURE(k.name);
    std::vector<std::uint8_t> packed;
    std::vector<float> absmax;
    ordo_quantize(k, {.zero_blocks = nf4::ZeroBlocks::cuda, .isa = nf4::Isa::portable}, packed, absmax);
    const auto subnormal = [](float v) { return v != 0.0f && std::fabs(v) < std::numeric_limits<float>::min(); };
    std::vector<bool> flushed_block(absmax.size(), false);
    for (std::size_t b = 0; b < absmax.size(); ++b) {
      const float r = 1.0f / absmax[b];
      flushed_block[b] = subnormal(absmax[b]) || subnormal(r);
      const bool same = same_bits(absmax[b], k.absmax[b]) || (std::isnan(absmax[b]) && std::isnan(k.absmax[b]));
      if (!same) {
        CAPTURE(b);
        CHECK(subnormal(absmax[b]));  // the GPU flushed a subnormal |x| out of the max
        CHECK(k.absmax[b] == 0.0f);
      }
    }
    for (std::size_t i = 0; i < k.n; ++i) {
      const auto code = [i](const std::vector<std::uint8_t>& p) {
        return i % 2 == 0 ? nf4::high_code(p[i / 2]) : nf4::low_code(p[i / 2]);
      };
      const unsigned mine = code(packed), theirs = code(k.packed);
      if (mine == theirs) continue;
      ++total;
      const std::size_t b = i / k.blocksize;
      const float r = 1.0f / absmax[b], p = k.x[i] * r;
      if (flushed_block[b] || subnormal(k.x[i]) || subnormal(p)) {
        ++flushed;
        continue;
      }
      CAPTURE(i);
      CAPTURE(k.x[i]);
      CAPTURE(absmax[b]);
      REQUIRE((mine + 1 == theirs || theirs + 1 == mine));
      const float mid = nf4::midpoint(std::min(mine, theirs));
      const float ulp = std::nextafter(std::fabs(mid), 2.0f) - std::fabs(mid);
      CHECK(std::fabs(p - mid) <= 2 * ulp);
      ++near;
    }
  }
  MESSAGE("codes differing from bitsandbytes on a GPU: " << total << " (" << near << " within 2 ulps of a threshold, "
                                                         << flushed << " in flushed blocks or values)");
  CHECK(near > 0);  // the near-threshold cases do reach the approximate reciprocal's differences
}
