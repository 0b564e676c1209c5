// ordo/quant/f32_cpu.hpp: the batch-1 GEMV of dense fp32 weights on every path this CPU has,
// against a double-precision product written here; threads and a runner give the same floats;
// rows apart by more than their length (a slice of a wider matrix); bad strides rejected. The
// batched form (a few x rows): every row's floats are gemv's for that row alone.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <vector>

#include <ordo/quant/f32_cpu.hpp>

#include "../test_support.hpp"  // normal_values

namespace f32 = ordo::quant::f32;

TEST_CASE("f32::gemv: y = W x on every path of this CPU, threads and a runner giving the same floats") {
  struct Shape {
    std::size_t rows, cols, ld;
  };
  // Columns that are and are not multiples of 32 and 8 (the AVX2 path's steps), one row, a
  // SmolLM2 shape, and rows further apart than their length.
  for (auto [rows, cols, ld] : {Shape{1, 1, 1}, Shape{3, 7, 7}, Shape{37, 576, 576}, Shape{300, 1536, 1536},
                                Shape{5, 45, 45}, Shape{9, 579, 579}, Shape{11, 64, 100}}) {
    CAPTURE(rows);
    CAPTURE(cols);
    CAPTURE(ld);
    const auto w = normal_values(rows * ld, 0.05f, 3);
    const auto x = normal_values(cols, 1.0f, 4);
    std::vector<double> reference(rows);
    double largest = 0;
    for (std::size_t r = 0; r < rows; ++r) {
      double s = 0, magnitude = 0;
      for (std::size_t k = 0; k < cols; ++k) {
        s += static_cast<double>(w[r * ld + k]) * x[k];
        magnitude += std::fabs(static_cast<double>(w[r * ld + k]) * x[k]);
      }
      reference[r] = s;
      largest = std::max(largest, magnitude);
    }
    for (auto isa : ordo::quant::nf4::runnable_isas()) {
      CAPTURE(static_cast<int>(isa));
      std::vector<float> one(rows), many(rows), ran(rows);
      f32::gemv(w.data(), rows, cols, ld, x.data(), one.data(), {.threads = 1, .isa = isa});
      f32::gemv(w.data(), rows, cols, ld, x.data(), many.data(), {.threads = 3, .isa = isa});
      int calls = 0;
      f32::Options with_runner{.isa = isa};
      with_runner.runner = [&](std::size_t count, std::size_t, const std::function<void(std::size_t, std::size_t)>& f) {
        ++calls;
        f(0, count / 2);  // two ranges, as a thread pool would run them
        f(count / 2, count);
      };
      f32::gemv(w.data(), rows, cols, ld, x.data(), ran.data(), with_runner);
      CHECK(calls == 1);
      for (std::size_t r = 0; r < rows; ++r) {
        // fp32 sums of cols products: a few ulps of the sum of magnitudes.
        CHECK(std::fabs(one[r] - reference[r]) <= 1e-6 * largest + 1e-30);
        CHECK(many[r] == one[r]);  // a row's sum never crosses threads: splitting rows changes nothing
        CHECK(ran[r] == one[r]);
      }
    }
  }
}

TEST_CASE("f32::gemv: the portable path adds the columns in order; rows closer than their length are rejected") {
  const std::vector<float> w{1e8f, 1.0f, -1e8f, 1.0f};  // one row; in order: (1e8 + 1) - 1e8 + 1 = 1 in fp32
  const std::vector<float> x{1.0f, 1.0f, 1.0f, 1.0f};
  float y = 0;
  f32::gemv(w.data(), 1, 4, 4, x.data(), &y, {.threads = 1, .isa = f32::Isa::portable});
  CHECK(y == 1.0f);
  CHECK_THROWS_AS(f32::gemv(w.data(), 2, 2, 1, x.data(), &y), std::invalid_argument);
}

TEST_CASE("f32::gemv_batch: each of a few x rows gets gemv's floats for it alone, on every path and thread count") {
  struct Shape {
    std::size_t rows, cols, ld;
  };
  for (auto [rows, cols, ld] : {Shape{1, 1, 1}, Shape{3, 7, 7}, Shape{37, 576, 576}, Shape{300, 1536, 1536},
                                Shape{5, 45, 45}, Shape{9, 579, 579}, Shape{11, 64, 100}}) {
    for (std::size_t n : {1u, 2u, 3u, 4u, 5u, 7u, 8u, 9u}) {
      CAPTURE(rows);
      CAPTURE(cols);
      CAPTURE(n);
      const auto w = normal_values(rows * ld, 0.05f, 5);
      const std::size_t ldx = cols + 3, ldy = rows + 2;  // rows of x and y further apart than their length
      const auto x = normal_values(n * ldx, 1.0f, 6);
      for (auto isa : ordo::quant::nf4::runnable_isas()) {
        CAPTURE(static_cast<int>(isa));
        std::vector<float> one(n * ldy, -7.0f), many(n * ldy, -7.0f), alone(rows);
        f32::gemv_batch(w.data(), rows, cols, ld, x.data(), n, ldx, one.data(), ldy, {.threads = 1, .isa = isa});
        f32::gemv_batch(w.data(), rows, cols, ld, x.data(), n, ldx, many.data(), ldy, {.threads = 3, .isa = isa});
        for (std::size_t j = 0; j < n; ++j) {
          f32::gemv(w.data(), rows, cols, ld, x.data() + j * ldx, alone.data(), {.threads = 1, .isa = isa});
          for (std::size_t r = 0; r < rows; ++r) {
            CHECK(one[j * ldy + r] == alone[r]);
            CHECK(many[j * ldy + r] == alone[r]);
          }
          for (std::size_t r = rows; r < ldy; ++r) CHECK(one[j * ldy + r] == -7.0f);  // the gap is not written
        }
      }
    }
  }
  std::vector<float> w(8, 1.0f), x(8, 1.0f), y(8);
  CHECK_THROWS_AS(f32::gemv_batch(w.data(), 2, 4, 3, x.data(), 2, 4, y.data(), 2), std::invalid_argument);  // ld
  CHECK_THROWS_AS(f32::gemv_batch(w.data(), 2, 4, 4, x.data(), 2, 3, y.data(), 2), std::invalid_argument);  // ldx
  CHECK_THROWS_AS(f32::gemv_batch(w.data(), 2, 4, 4, x.data(), 2, 4, y.data(), 1), std::invalid_argument);  // ldy
}
