// ordo/quant/nf4_cpu.hpp: blockwise NF4 quantize/dequantize, double quantization and GEMV on the
// CPU. The portable path, the AVX2 path and the multi-threaded runs must give identical bytes;
// each is also checked against a plain statement of the rule written here.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <tuple>
#include <vector>

#include <ordo/quant/nf4_cpu.hpp>

#include "../test_support.hpp"  // normal_values

namespace nf4 = ordo::quant::nf4;
using nf4::bf16;
using nf4::f16;

namespace {

constexpr float nan_v = std::numeric_limits<float>::quiet_NaN();
constexpr float inf_v = std::numeric_limits<float>::infinity();

template <class T>
std::vector<T> convert(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = ordo::quant::from_float<T>(v[i]);
  return out;
}

// The rule, stated directly: per block absmax = max |x| (NaN ignored; -FLT_MAX start for a full
// block, 0 for a partial one), code = quantize_code(x * (1/absmax)), zero padding for odd n.
template <class T>
void reference_quantize(const std::vector<T>& x, std::size_t bs, nf4::ZeroBlocks zb, std::vector<std::uint8_t>& packed,
                        std::vector<float>& absmax) {
  const std::size_t n = x.size(), blocks = (n + bs - 1) / bs;
  absmax.assign(blocks, 0.0f);
  std::vector<std::uint8_t> codes(n + 1);
  for (std::size_t b = 0; b < blocks; ++b) {
    const std::size_t end = std::min(n, (b + 1) * bs);
    float m = end - b * bs < bs ? 0.0f : -std::numeric_limits<float>::max();
    for (std::size_t i = b * bs; i < end; ++i) m = std::fmax(m, std::fabs(ordo::quant::to_float(x[i])));
    absmax[b] = m;
    const float r = (m == 0.0f && zb == nf4::ZeroBlocks::zero_code) ? 0.0f : 1.0f / m;
    for (std::size_t i = b * bs; i < end; ++i) codes[i] = nf4::quantize_code(ordo::quant::to_float(x[i]) * r);
    if (end == n && n % 2) codes[n] = nf4::quantize_code(0.0f * r);
  }
  packed.assign((n + 1) / 2, 0);
  for (std::size_t j = 0; j < packed.size(); ++j)
    packed[j] = static_cast<std::uint8_t>(codes[2 * j] << 4 | codes[2 * j + 1]);
}

// The first element of `buffer` at a 64-byte boundary, plus `shift` elements; `buffer` holds
// 64 / sizeof(T) elements more than are written there (and `shift` more).
template <class T>
T* aligned_in(std::vector<T>& buffer, std::size_t shift = 0) {
  const auto address = reinterpret_cast<std::uintptr_t>(buffer.data());
  return buffer.data() + (64 - address % 64) % 64 / sizeof(T) + shift;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

template <class T>
void check_quantize_paths(const std::vector<float>& values, std::size_t bs, nf4::ZeroBlocks zb) {
  const std::vector<T> x = convert<T>(values);
  std::vector<std::uint8_t> want_packed;
  std::vector<float> want_absmax;
  reference_quantize(x, bs, zb, want_packed, want_absmax);
  for (nf4::Isa isa : nf4::runnable_isas()) {
    for (unsigned threads : {1u, 3u}) {
      CAPTURE(static_cast<int>(isa));
      CAPTURE(threads);
      nf4::Options opt{.blocksize = bs, .zero_blocks = zb, .threads = threads, .isa = isa};
      std::vector<std::uint8_t> packed(nf4::packed_bytes(x.size()), 0xAB);
      std::vector<float> absmax(nf4::block_count(x.size(), bs), -1.0f);
      nf4::quantize_blocks(x.data(), x.size(), packed.data(), absmax.data(), opt);
      CHECK(packed == want_packed);
      CHECK(same_bits(absmax, want_absmax));

      // dequantize: code value times absmax, in fp32, then rounded to the output type; the same
      // with every kind of store, into an output aligned to 64 bytes (streaming stores possible)
      // and into one an element past it (regular stores whatever was asked)
      for (nf4::Stores stores : {nf4::Stores::automatic, nf4::Stores::cached, nf4::Stores::streaming}) {
        for (std::size_t shift : {std::size_t{0}, std::size_t{1}}) {
          CAPTURE(static_cast<int>(stores));
          CAPTURE(shift);
          std::vector<T> buffer(x.size() + 64 / sizeof(T) + 1);
          T* y = aligned_in(buffer, shift);
          nf4::Options dequantize_opt = opt;
          dequantize_opt.stores = stores;
          nf4::dequantize_blocks(packed.data(), absmax.data(), x.size(), y, dequantize_opt);
          unsigned bad = 0;
          for (std::size_t i = 0; i < x.size(); ++i) {
            const std::uint8_t b = packed[i / 2];
            const float v = nf4::codebook[i % 2 ? b & 15 : b >> 4] * absmax[i / bs];
            const T want = ordo::quant::from_float<T>(v);
            if (std::memcmp(&want, &y[i], sizeof(T)) != 0) ++bad;
          }
          CHECK(bad == 0);
        }
      }
    }
  }
}

}  // namespace

TEST_CASE("quantize and dequantize: every path equals the rule, for every blocksize, dtype and odd sizes") {
  for (std::size_t bs : {32u, 64u, 128u, 256u, 512u, 1024u, 2048u, 4096u}) {
    for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{2}, std::size_t{3}, bs - 1, bs, bs + 1, bs + 33,
                          3 * bs + 17, std::size_t{70001}}) {
      CAPTURE(bs);
      CAPTURE(n);
      const std::vector<float> v = normal_values(n, 0.7f, static_cast<unsigned>(n * 31 + bs));
      check_quantize_paths<float>(v, bs, nf4::ZeroBlocks::zero_code);
      check_quantize_paths<bf16>(v, bs, nf4::ZeroBlocks::zero_code);
      check_quantize_paths<f16>(v, bs, nf4::ZeroBlocks::zero_code);
    }
  }
}

TEST_CASE("streaming stores: from the size of the largest cache on, the same values as regular stores") {
  const std::size_t threshold = nf4::streaming_store_bytes();
  CHECK(threshold >= (std::size_t{1} << 20));
  // an fp32 output one block past the threshold, 64-byte aligned: Stores::automatic streams it
  const std::size_t n = (threshold / sizeof(float) / 64 + 1) * 64;
  const std::vector<float> x = normal_values(n, 0.5f, 17u);
  nf4::Options opt{.blocksize = 64, .threads = 2};
  std::vector<std::uint8_t> packed(nf4::packed_bytes(n));
  std::vector<float> absmax(nf4::block_count(n, 64));
  nf4::quantize_blocks(x.data(), n, packed.data(), absmax.data(), opt);
  std::vector<float> streamed_buffer(n + 64 / sizeof(float)), cached(n);
  float* streamed = aligned_in(streamed_buffer);
  nf4::dequantize_blocks(packed.data(), absmax.data(), n, streamed, opt);
  opt.stores = nf4::Stores::cached;
  nf4::dequantize_blocks(packed.data(), absmax.data(), n, cached.data(), opt);
  CHECK(std::memcmp(streamed, cached.data(), n * sizeof(float)) == 0);
}

TEST_CASE("all-zero blocks: code 7 (0x77) by default, code 0 (0x00) with ZeroBlocks::cuda; both dequantize to 0") {
  std::vector<float> v = normal_values(64 * 4 + 5, 1.0f, 5);
  for (std::size_t i = 64; i < 128; ++i) v[i] = 0.0f;
  for (std::size_t i = 128; i < 192; ++i) v[i] = -0.0f;
  for (std::size_t i = 256; i < v.size(); ++i) v[i] = 0.0f;  // a zero partial tail, odd length
  for (auto zb : {nf4::ZeroBlocks::zero_code, nf4::ZeroBlocks::cuda}) {
    check_quantize_paths<float>(v, 64, zb);
    for (nf4::Isa isa : nf4::runnable_isas()) {
      nf4::Options opt{.blocksize = 64, .zero_blocks = zb, .isa = isa};
      const auto q = nf4::quantize(std::span<const float>(v), opt, /*double_quant=*/false);
      const std::uint8_t want = zb == nf4::ZeroBlocks::zero_code ? 0x77 : 0x00;
      for (std::size_t j = 32; j < 96; ++j) CHECK(q.packed[j] == want);
      for (std::size_t j = 128; j < q.packed.size(); ++j) CHECK(q.packed[j] == want);
      CHECK(q.absmax[1] == 0.0f);
      CHECK(q.absmax[2] == 0.0f);
      CHECK(q.absmax[4] == 0.0f);
      const auto y = nf4::dequantize(q, opt);
      for (std::size_t i = 64; i < 192; ++i) CHECK(y[i] == 0.0f);
      for (std::size_t i = 256; i < y.size(); ++i) CHECK(y[i] == 0.0f);
      // the default keeps zeros exactly zero after double quantization too
      if (zb == nf4::ZeroBlocks::zero_code) {
        const auto qd = nf4::quantize(std::span<const float>(v), opt, /*double_quant=*/true);
        const auto yd = nf4::dequantize(qd, opt);
        for (std::size_t i = 64; i < 192; ++i) CHECK(yd[i] == 0.0f);  // +0 or -0: the scale may be below 0
      }
    }
  }
}

TEST_CASE("NaN and Inf follow the CUDA rule: NaN is ignored by absmax and takes code 0; Inf makes absmax Inf") {
  std::vector<float> v = normal_values(64 * 4 + 3, 1.0f, 9);
  v[5] = nan_v;                                               // block 0: one NaN
  v[64 + 7] = inf_v;                                          // block 1: one +Inf
  for (std::size_t i = 128; i < 192; ++i) v[i] = nan_v;       // block 2: all NaN
  for (std::size_t i = 256; i < v.size(); ++i) v[i] = nan_v;  // partial tail: all NaN
  check_quantize_paths<float>(v, 64, nf4::ZeroBlocks::zero_code);
  check_quantize_paths<float>(v, 64, nf4::ZeroBlocks::cuda);
  for (nf4::Isa isa : nf4::runnable_isas()) {
    nf4::Options opt{.blocksize = 64, .isa = isa};
    const auto q = nf4::quantize(std::span<const float>(v), opt, false);
    float finite_max = 0;
    for (std::size_t i = 0; i < 64; ++i)
      if (!std::isnan(v[i])) finite_max = std::max(finite_max, std::fabs(v[i]));
    CHECK(q.absmax[0] == finite_max);
    CHECK((q.packed[2] & 15) == 0);  // v[5] is NaN: the low nibble of byte 2
    CHECK(std::isinf(q.absmax[1]));
    CHECK((q.packed[(64 + 7) / 2] & 15) == 0);                 // Inf * (1/Inf) = Inf * 0 = NaN -> code 0
    CHECK(q.packed[(64 + 8) / 2] == 0x77);                     // finite * 0 = 0 -> code 7
    CHECK(q.absmax[2] == -std::numeric_limits<float>::max());  // a full all-NaN block
    for (std::size_t j = 64; j < 96; ++j) CHECK(q.packed[j] == 0x00);
    CHECK(q.absmax[4] == 0.0f);  // the tail's zero padding enters its max
    const auto y = nf4::dequantize(q, opt);
    CHECK(std::isnan(y[64 + 8]));  // code 7 (0.0) times Inf
    CHECK(y[64 + 7] == -inf_v);    // code 0 (-1.0) times Inf
    // 16-bit outputs: NaN becomes the canonical quiet NaN on every path
    std::vector<bf16> yb(v.size());
    std::vector<f16> yh(v.size());
    nf4::dequantize_blocks(q.packed.data(), q.absmax.data(), v.size(), yb.data(), opt);
    nf4::dequantize_blocks(q.packed.data(), q.absmax.data(), v.size(), yh.data(), opt);
    unsigned bad16 = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      bad16 += yb[i].bits == ordo::quant::to_bf16(y[i]).bits ? 0 : 1;
      bad16 += yh[i].bits == ordo::quant::to_f16(y[i]).bits ? 0 : 1;
    }
    CHECK(bad16 == 0);
    CHECK(yb[64 + 8].bits == 0x7FC0);
    CHECK(yh[64 + 8].bits == 0x7E00);
  }
}

TEST_CASE("round trip: each value within half the widest codebook gap of its block's absmax") {
  const std::vector<float> v = normal_values(100003, 2.0f, 13);
  const auto q = nf4::quantize(std::span<const float>(v), {.blocksize = 64}, false);
  const auto y = nf4::dequantize(q);
  float half_gap = 0;
  for (unsigned c = 0; c < 15; ++c) half_gap = std::max(half_gap, (nf4::codebook[c + 1] - nf4::codebook[c]) / 2);
  unsigned bad = 0;
  for (std::size_t i = 0; i < v.size(); ++i)
    if (std::fabs(v[i] - y[i]) > half_gap * q.absmax[i / 64] * 1.0001f) ++bad;
  CHECK(bad == 0);
  // and the absmax element of each block comes back exactly (code 0 or 15)
  for (std::size_t b = 0; b < q.absmax.size(); ++b) {
    for (std::size_t i = b * 64; i < std::min(v.size(), b * 64 + 64); ++i)
      if (std::fabs(v[i]) == q.absmax[b]) CHECK(std::fabs(y[i]) == q.absmax[b]);
  }
}

TEST_CASE("double quantization: offset, 8-bit codes by the CUDA rule, reconstruction in two roundings") {
  const std::vector<float> v = normal_values(64 * 700 + 9, 0.05f, 17);
  const auto plain = nf4::quantize(std::span<const float>(v), {.blocksize = 64}, false);
  const auto nested = nf4::quantize(std::span<const float>(v), {.blocksize = 64}, true);
  REQUIRE(nested.nested);
  CHECK(nested.packed == plain.packed);
  CHECK(nested.absmax.empty());
  CHECK(nested.absmax_codes.size() == plain.absmax.size());
  CHECK(nested.absmax2.size() == 3);  // 701 blocks -> three 256-blocks
  CHECK(nested.offset == nf4::absmax_offset(plain.absmax.data(), plain.absmax.size()));
  const float* map = nf4::dynamic_map.data();
  for (std::size_t k = 0; k < 3; ++k) {
    float m = k < 2 ? -std::numeric_limits<float>::max() : 0.0f;
    for (std::size_t i = k * 256; i < std::min<std::size_t>(701, k * 256 + 256); ++i)
      m = std::fmax(m, std::fabs(plain.absmax[i] - nested.offset));
    CHECK(nested.absmax2[k] == m);
  }
  unsigned bad_code = 0, bad_scale = 0;
  const auto scales = nf4::block_scales(nested);
  for (std::size_t i = 0; i < plain.absmax.size(); ++i) {
    const float r = 1.0f / nested.absmax2[i / 256];
    if (nested.absmax_codes[i] != nf4::quantize_code8(map, (plain.absmax[i] - nested.offset) * r)) ++bad_code;
    volatile float product = map[nested.absmax_codes[i]] * nested.absmax2[i / 256];  // no FMA contraction
    if (scales[i] != product + nested.offset) ++bad_scale;
    CHECK(scales[i] == doctest::Approx(plain.absmax[i]).epsilon(0.02));
  }
  CHECK(bad_code == 0);
  CHECK(bad_scale == 0);
  const auto y = nf4::dequantize(nested);
  for (std::size_t i = 0; i < v.size(); i += 97) {
    const std::uint8_t b = nested.packed[i / 2];
    CHECK(y[i] == nf4::codebook[i % 2 ? b & 15 : b >> 4] * scales[i / 64]);
  }
}

TEST_CASE("GEMV: y = W x against a double-precision product of the dequantized weights") {
  for (const auto& shape : {std::tuple{37u, 256u, 64u}, std::tuple{64u, 4096u, 128u}, std::tuple{5u, 96u, 32u},
                            std::tuple{9u, 100u, 64u} /* blocks straddle rows */, std::tuple{3u, 33u, 32u}}) {
    const unsigned rows = std::get<0>(shape), cols = std::get<1>(shape), bs = std::get<2>(shape);
    CAPTURE(rows);
    CAPTURE(cols);
    const std::vector<float> w = normal_values(std::size_t{rows} * cols, 0.1f, rows * 7 + cols);
    const std::vector<float> x = normal_values(cols, 1.0f, cols);
    for (bool dq : {false, true}) {
      const auto q = nf4::quantize(std::span<const float>(w), {.blocksize = bs}, dq);
      const auto wd = nf4::dequantize(q);
      for (nf4::Isa isa : nf4::runnable_isas()) {
        for (unsigned threads : {1u, 4u}) {
          std::vector<float> y(rows, nan_v);
          nf4::gemv(q, rows, cols, x.data(), y.data(), {.threads = threads, .isa = isa});
          for (unsigned r = 0; r < rows; ++r) {
            double want = 0, mag = 0;
            for (unsigned k = 0; k < cols; ++k) {
              want += double(wd[std::size_t{r} * cols + k]) * x[k];
              mag += std::fabs(double(wd[std::size_t{r} * cols + k]) * x[k]);
            }
            CHECK(std::fabs(y[r] - want) <= 1e-5 * mag + 1e-30);
          }
        }
      }
    }
  }
  const std::vector<float> w(64 * 64, 1.0f);
  const auto q = nf4::quantize(std::span<const float>(w), {.blocksize = 64}, false);
  std::vector<float> x(64, 1.0f), y(64);
  CHECK_THROWS_AS(nf4::gemv(q, 32, 64, x.data(), y.data()), std::invalid_argument);
}

TEST_CASE("GEMV prefetching: a whole number of row groups ahead, the least that is at least 2 KiB") {
  // so that each row's prefetch lands in the row the same stream reads next (cpu_features.hpp)
  for (std::size_t group : {1u, 288u, 576u, 2047u, 2048u, 4096u, 5504u, 11008u}) {
    CAPTURE(group);
    const std::size_t d = nf4::gemv_prefetch_distance(group);
    CHECK(d % group == 0);
    CHECK(d >= 2048);
    CHECK(d < 2048 + group);
  }
  CHECK(nf4::gemv_prefetch_distance(0) == 2048);
  CHECK(nf4::gemv_prefetch_distance(1000, 100) == 1000);
}

TEST_CASE("GEMV with Gemv::int16: within 1e-4 of the exact product, the same group sums on every path") {
  // Error bound: weights within 0.5/8192 of absmax (|value| <= absmax), activations within
  // 0.5/32767 of their group's largest, so |y - exact| <= sum_k |absmax_k| |x_k| / 16384 +
  // sum_k |w_k| max|x|_group / 65534, plus fp32 sums; checked against 1e-4 of sum |absmax| max|x|.
  for (const auto& shape : {std::tuple{37u, 256u, 64u}, std::tuple{64u, 4096u, 128u}, std::tuple{5u, 96u, 32u},
                            std::tuple{11u, 4096u, 4096u}}) {
    const unsigned rows = std::get<0>(shape), cols = std::get<1>(shape), bs = std::get<2>(shape);
    CAPTURE(rows);
    CAPTURE(cols);
    CAPTURE(bs);
    const std::vector<float> w = normal_values(std::size_t{rows} * cols, 0.1f, rows * 5 + cols);
    std::vector<float> x = normal_values(cols, 1.0f, cols + 1);
    for (std::size_t k = 32; k < 64 && k < cols; ++k) x[k] = 0.0f;  // an all-zero group of activations
    const auto q = nf4::quantize(std::span<const float>(w), {.blocksize = bs}, false);
    const auto wd = nf4::dequantize(q);
    const auto scales = nf4::block_scales(q);
    std::vector<float> first;
    for (nf4::Isa isa : nf4::runnable_isas()) {
      CAPTURE(static_cast<int>(isa));
      std::vector<float> y(rows, nan_v), exact(rows, nan_v), threaded(rows, nan_v);
      nf4::gemv(q, rows, cols, x.data(), y.data(), {.threads = 1, .isa = isa, .gemv = nf4::Gemv::int16});
      nf4::gemv(q, rows, cols, x.data(), threaded.data(), {.threads = 4, .isa = isa, .gemv = nf4::Gemv::int16});
      nf4::gemv(q, rows, cols, x.data(), exact.data(), {.threads = 1, .isa = isa});
      CHECK(std::memcmp(y.data(), threaded.data(), rows * sizeof(float)) == 0);
      bool differs = false;
      for (unsigned r = 0; r < rows; ++r) {
        double want = 0, bound = 0;
        for (unsigned k = 0; k < cols; ++k) {
          want += double(wd[std::size_t{r} * cols + k]) * x[k];
          bound += std::fabs(double(scales[(std::size_t{r} * cols + k) / bs]) * x[k]);
        }
        CHECK(std::fabs(y[r] - want) <= 1e-4 * bound);
        differs = differs || y[r] != exact[r];
      }
      CHECK(differs);  // the integer path ran (it rounds differently from the exact one)
      if (first.empty()) first = y;
      for (unsigned r = 0; r < rows; ++r)  // integer group sums: paths differ only in fp32 adds
        CHECK(std::fabs(y[r] - first[r]) <= 1e-6 * std::fabs(first[r]) + 1e-5);
    }
  }
  // A non-finite activation: the exact path runs and carries it into y, as without the option.
  const unsigned rows = 4, cols = 64;
  const std::vector<float> w = normal_values(rows * cols, 0.1f, 3);
  const auto q = nf4::quantize(std::span<const float>(w), {.blocksize = 64}, false);
  std::vector<float> x = normal_values(cols, 1.0f, 4), y(rows, 0.0f);
  x[5] = nan_v;
  nf4::gemv(q, rows, cols, x.data(), y.data(), {.gemv = nf4::Gemv::int16});
  for (float v : y) CHECK(std::isnan(v));
}

TEST_CASE("gemv_shared: matrices that multiply one x give gemv's values, bit for bit, in one loop") {
  // q, k, v-like parts of unequal heights; ranges that cross from one part into the next (a
  // runner of 7 rows) and the threads' split; both arithmetics; blocks that straddle rows
  for (const auto& shape : {std::tuple{576u, 64u}, std::tuple{100u, 32u} /* straddle */}) {
    const unsigned cols = std::get<0>(shape), bs = std::get<1>(shape);
    CAPTURE(cols);
    const std::vector<unsigned> heights = {45, 15, 15};
    std::vector<nf4::Quantized> qs;
    std::vector<std::vector<float>> scales;
    for (std::size_t i = 0; i < heights.size(); ++i) {
      const auto w = normal_values(std::size_t{heights[i]} * cols, 0.1f, 31 + i);
      qs.push_back(nf4::quantize(std::span<const float>(w), {.blocksize = bs}, i == 1));
      scales.push_back(nf4::block_scales(qs.back()));
    }
    const std::vector<float> x = normal_values(cols, 1.0f, 40);
    std::size_t calls = 0;
    const nf4::range_runner sevens = [&](std::size_t count, std::size_t, const std::function<void(std::size_t, std::size_t)>& f) {
      ++calls;
      for (std::size_t begin = 0; begin < count; begin += 7) f(begin, std::min<std::size_t>(count, begin + 7));
    };
    for (nf4::Isa isa : nf4::runnable_isas())
      for (nf4::Gemv arithmetic : {nf4::Gemv::exact, nf4::Gemv::int16})
        for (bool by_runner : {false, true}) {
          CAPTURE(static_cast<int>(isa));
          CAPTURE(static_cast<int>(arithmetic));
          CAPTURE(by_runner);
          nf4::Options opt{.blocksize = bs, .threads = 3, .isa = isa, .gemv = arithmetic};
          if (by_runner) opt.runner = sevens;
          std::vector<std::vector<float>> got, want;
          std::vector<nf4::gemv_part> parts;
          for (std::size_t i = 0; i < heights.size(); ++i) {
            got.emplace_back(heights[i], nan_v);
            want.emplace_back(heights[i], nan_v);
            parts.push_back({qs[i].packed.data(), scales[i].data(), heights[i], got.back().data()});
          }
          const std::size_t calls_before = calls;
          nf4::gemv_shared(parts, cols, x.data(), opt);
          if (by_runner) CHECK(calls == calls_before + 1);  // one loop for all three
          for (std::size_t i = 0; i < heights.size(); ++i) {
            nf4::gemv(qs[i].packed.data(), scales[i].data(), heights[i], cols, x.data(), want[i].data(),
                      {.blocksize = bs, .threads = 1, .isa = isa, .gemv = arithmetic});
            CHECK(std::memcmp(got[i].data(), want[i].data(), heights[i] * sizeof(float)) == 0);
          }
        }
  }
}

TEST_CASE("a range runner splits the work its own way: GEMV and dequantize give the threads' values") {
  const unsigned rows = 300, cols = 512;
  const std::vector<float> w = normal_values(std::size_t{rows} * cols, 0.1f, 11);
  const std::vector<float> x = normal_values(cols, 1.0f, 12);
  const auto q = nf4::quantize(std::span<const float>(w), {.blocksize = 64}, true);
  std::size_t calls = 0, covered = 0;
  nf4::Options by_runner{.blocksize = 64};
  // ranges of at most `grain` items, run last first, as a thread pool might
  by_runner.runner = [&](std::size_t count, std::size_t grain, const std::function<void(std::size_t, std::size_t)>& f) {
    ++calls;
    for (std::size_t end = count; end > 0;) {
      const std::size_t begin = end > grain ? end - grain : 0;
      f(begin, end);
      covered += end - begin;
      end = begin;
    }
  };
  for (nf4::Isa isa : nf4::runnable_isas()) {
    by_runner.isa = isa;
    std::vector<float> y(rows, nan_v), want(rows, nan_v);
    nf4::gemv(q, rows, cols, x.data(), y.data(), by_runner);
    nf4::gemv(q, rows, cols, x.data(), want.data(), {.threads = 3, .isa = isa});
    CHECK(std::memcmp(y.data(), want.data(), rows * sizeof(float)) == 0);
  }
  CHECK(calls == nf4::runnable_isas().size());
  CHECK(covered == rows * nf4::runnable_isas().size());
  std::vector<float> d1(std::size_t{rows} * cols), d2(d1.size());
  const auto scales = nf4::block_scales(q);
  nf4::dequantize_blocks(q.packed.data(), scales.data(), d1.size(), d1.data(), by_runner);
  nf4::dequantize_blocks(q.packed.data(), scales.data(), d2.size(), d2.data(), {.blocksize = 64, .threads = 2});
  CHECK(std::memcmp(d1.data(), d2.data(), d1.size() * sizeof(float)) == 0);
}

TEST_CASE("options: invalid blocksizes are rejected with the function's name") {
  std::vector<float> v(100, 1.0f);
  std::vector<std::uint8_t> p(50);
  std::vector<float> a(10);
  CHECK_THROWS_WITH_AS(nf4::quantize_blocks(v.data(), v.size(), p.data(), a.data(), {.blocksize = 48}),
                       doctest::Contains("ordo::quant::nf4::quantize_blocks: blocksize 48"), std::invalid_argument);
  CHECK_THROWS_AS(nf4::dequantize_blocks(p.data(), a.data(), v.size(), v.data(), {.blocksize = 16}),
                  std::invalid_argument);
  if (!nf4::cpu_has_avx2())
    CHECK_THROWS_AS(nf4::resolve_isa(nf4::Isa::avx2), std::runtime_error);
  else
    CHECK(nf4::resolve_isa(nf4::Isa::automatic) == (nf4::cpu_has_avx512() ? nf4::Isa::avx512 : nf4::Isa::avx2));
  if (!nf4::cpu_has_avx512()) CHECK_THROWS_AS(nf4::resolve_isa(nf4::Isa::avx512), std::runtime_error);
  CHECK(nf4::resolve_isa(nf4::Isa::portable) == nf4::Isa::portable);
  // runnable_isas: portable first, then every path resolve_isa accepts on this CPU, the last the
  // one `automatic` picks
  const auto runnable = nf4::runnable_isas();
  CHECK(runnable.front() == nf4::Isa::portable);
  CHECK(runnable.size() == 1u + (nf4::cpu_has_avx2() ? 1u : 0u) + (nf4::cpu_has_avx512() ? 1u : 0u));
  for (auto isa : runnable) CHECK(nf4::resolve_isa(isa) == isa);
  CHECK(runnable.back() == nf4::resolve_isa(nf4::Isa::automatic));
}
