// ordo/quant/q8_cpu.hpp: GGUF's Q8_0 rule on a matrix, its dequantized values, and the batch-1
// GEMV on every path this CPU has, against a plain statement of the rule and a double-precision
// product written here.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include <ordo/quant/q8_cpu.hpp>

#include "../test_support.hpp"  // normal_values

namespace q8 = ordo::quant::q8;

TEST_CASE("q8::quantize follows Q8_0's rule: an fp16 scale max|x|/127 per 32 values of a row, codes round(x/d)") {
  const std::size_t rows = 7, cols = 96;
  auto w = normal_values(rows * cols, 0.05f, 1);
  w[5] = 0.0f;
  for (std::size_t i = 32; i < 64; ++i) w[i] = 0.0f;  // an all-zero block: scale 0, codes 0
  w[100] = -3.0f;                                      // a block whose extreme is negative
  const auto m = q8::quantize(w.data(), rows, cols);
  REQUIRE(m.codes.size() == rows * cols);
  REQUIRE(m.scales.size() == rows * cols / 32);
  CHECK(m.bytes() == rows * cols + rows * cols / 32 * 2);
  for (std::size_t b = 0; b < m.scales.size(); ++b) {
    float amax = 0.0f;
    for (std::size_t i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(w[32 * b + i]));
    const float d = amax / 127.0f;
    CHECK(m.scales[b] == ordo::quant::to_float(ordo::quant::to_f16(d)));
    int extreme = 0;
    for (std::size_t i = 0; i < 32; ++i) {
      const float expected = d == 0.0f ? 0.0f : std::round(w[32 * b + i] * (1.0f / d));
      CHECK(static_cast<float>(m.codes[32 * b + i]) == expected);
      extreme = std::max(extreme, std::abs(static_cast<int>(m.codes[32 * b + i])));
    }
    CHECK(extreme == (amax == 0.0f ? 0 : 127));  // the largest value of a block gets code +-127
  }
  CHECK(m.codes[100] == -127);
  std::vector<float> back(rows * cols);
  q8::dequantize(m, back.data());
  for (std::size_t i = 0; i < back.size(); ++i) CHECK(back[i] == static_cast<float>(m.codes[i]) * m.scales[i / 32]);
}

TEST_CASE("values that are Q8_0 values already come back unchanged (a GGUF's Q8_0 tensor, dequantized)") {
  const std::size_t rows = 64, cols = 128;
  for (float scale : {1e-3f, 0.02f, 1.0f, 40.0f}) {
    CAPTURE(scale);
    const auto w = normal_values(rows * cols, scale, 2);
    const auto m = q8::quantize(w.data(), rows, cols);
    std::vector<float> values(rows * cols);
    q8::dequantize(m, values.data());
    const auto again = q8::quantize(values.data(), rows, cols);
    CHECK(again.codes == m.codes);
    CHECK(again.scales == m.scales);
  }
}

TEST_CASE("holds_q8_0_values: true for Q8_0 values read back, false once one value moves by one ulp") {
  const std::size_t rows = 16, cols = 64;
  const auto w = normal_values(rows * cols, 0.02f, 3);
  CHECK_FALSE(q8::holds_q8_0_values(w.data(), rows, cols));  // plain fp32 values are not Q8_0's
  const auto m = q8::quantize(w.data(), rows, cols);
  std::vector<float> values(rows * cols);
  q8::dequantize(m, values.data());
  CHECK(q8::holds_q8_0_values(values.data(), rows, cols));
  for (std::size_t at : {std::size_t{0}, std::size_t{500}, rows * cols - 1}) {
    CAPTURE(at);
    auto moved = values;
    moved[at] = std::nextafter(moved[at], 1.0f);
    CHECK_FALSE(q8::holds_q8_0_values(moved.data(), rows, cols));
  }
  auto with_nan = values;
  with_nan[77] = std::numeric_limits<float>::quiet_NaN();
  CHECK_FALSE(q8::holds_q8_0_values(with_nan.data(), rows, cols));
  CHECK_FALSE(q8::holds_q8_0_values(values.data(), rows * 2, cols / 2 + 16));  // rows of 48 values
  const std::vector<float> zeros(rows * cols, 0.0f);
  CHECK(q8::holds_q8_0_values(zeros.data(), rows, cols));  // scale 0, codes 0
}

TEST_CASE("quantize_if_q8_0_values: one pass that answers as holds_q8_0_values and writes quantize's codes and scales") {
  const std::size_t rows = 8, cols = 96;
  const auto w = normal_values(rows * cols, 0.5f, 11);
  const auto m = q8::quantize(w.data(), rows, cols);
  std::vector<float> values(rows * cols);
  q8::dequantize(m, values.data());
  std::vector<std::int8_t> codes(rows * cols, 99);
  std::vector<float> scales(rows * cols / 32, -1.0f);
  REQUIRE(q8::quantize_if_q8_0_values(values.data(), rows, cols, codes.data(), scales.data()));
  CHECK(codes == m.codes);  // Q8_0 of Q8_0 values: the same codes and scales
  CHECK(scales == m.scales);
  CHECK_FALSE(q8::quantize_if_q8_0_values(w.data(), rows, cols, codes.data(), scales.data()));
  auto moved = values;
  moved.back() = std::nextafter(moved.back(), 2.0f);  // the last block differs: found after all others
  CHECK_FALSE(q8::quantize_if_q8_0_values(moved.data(), rows, cols, codes.data(), nullptr));
  // quantize_into: quantize's bytes into the caller's memory
  std::vector<std::int8_t> into_codes(rows * cols);
  std::vector<float> into_scales(rows * cols / 32);
  q8::quantize_into(w.data(), rows, cols, into_codes.data(), into_scales.data());
  CHECK(into_codes == m.codes);
  CHECK(into_scales == m.scales);
}

TEST_CASE("q8::quantize rejects rows that are not whole blocks, non-finite values and scales beyond fp16") {
  std::vector<float> w(2 * 48, 0.5f);
  CHECK_THROWS_WITH_AS(q8::quantize(w.data(), 2, 48),
                       "ordo::quant::q8::quantize: rows of 48 values; Q8_0 needs a multiple of 32",
                       std::invalid_argument);
  std::vector<float> v(2 * 64, 0.5f);
  v[64 + 33] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(q8::quantize(v.data(), 2, 64),
                       "ordo::quant::q8::quantize: a non-finite value at row 1, column 33", std::invalid_argument);
  v[64 + 33] = -std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(q8::quantize(v.data(), 2, 64), std::invalid_argument);
  v[64 + 33] = 1e9f;
  CHECK_THROWS_WITH_AS(q8::quantize(v.data(), 2, 64),
                       "ordo::quant::q8::quantize: values too large for Q8_0's fp16 scale at row 1 (max |x| above "
                       "65504 * 127)",
                       std::invalid_argument);
  std::vector<float> x(48), y(2);
  std::vector<std::int8_t> codes(96);
  std::vector<float> scales(3);
  CHECK_THROWS_AS(q8::gemv(codes.data(), scales.data(), 2, 48, x.data(), y.data()), std::invalid_argument);
}

TEST_CASE("q8::gemv: y = W x on every path of this CPU, threads and a runner giving the same floats") {
  for (auto [rows, cols] : {std::pair<std::size_t, std::size_t>{1, 32}, {37, 576}, {300, 1536}, {5, 64}}) {
    CAPTURE(rows);
    CAPTURE(cols);
    const auto w = normal_values(rows * cols, 0.05f, 3);
    const auto x = normal_values(cols, 1.0f, 4);
    const auto m = q8::quantize(w.data(), rows, cols);
    std::vector<float> values(rows * cols);
    q8::dequantize(m, values.data());
    std::vector<double> reference(rows);
    double largest = 0;
    for (std::size_t r = 0; r < rows; ++r) {
      double s = 0, magnitude = 0;
      for (std::size_t k = 0; k < cols; ++k) {
        s += static_cast<double>(values[r * cols + k]) * x[k];
        magnitude += std::fabs(static_cast<double>(values[r * cols + k]) * x[k]);
      }
      reference[r] = s;
      largest = std::max(largest, magnitude);
    }
    for (auto isa : ordo::quant::nf4::runnable_isas()) {
      CAPTURE(static_cast<int>(isa));
      std::vector<float> one(rows), many(rows), ran(rows);
      q8::gemv(m, x.data(), one.data(), {.threads = 1, .isa = isa});
      q8::gemv(m, x.data(), many.data(), {.threads = 3, .isa = isa});
      int calls = 0;
      q8::Options with_runner{.isa = isa};
      with_runner.runner = [&](std::size_t count, std::size_t, const std::function<void(std::size_t, std::size_t)>& f) {
        ++calls;
        f(0, count / 2);  // two ranges, as a thread pool would run them
        f(count / 2, count);
      };
      q8::gemv(m, x.data(), ran.data(), with_runner);
      CHECK(calls == 1);
      for (std::size_t r = 0; r < rows; ++r) {
        // fp32 sums of cols products: a few ulps of the sum of magnitudes.
        CHECK(std::fabs(one[r] - reference[r]) <= 1e-6 * largest + 1e-30);
        CHECK(many[r] == one[r]);  // rows are independent: splitting them changes nothing
        CHECK(ran[r] == one[r]);
      }
    }
  }
}
