// ordo/quant/nf4_batch_cpu.hpp: a few x rows against packed NF4 weights give, bit for bit,
// f32::gemv_batch's floats on the dequantized weights, on every path of this CPU and any thread
// count (one x row too); rows of x and y further apart than their length; blocksizes 32-256;
// shapes that are not whole blocks per row and bad strides rejected.
#include <doctest/doctest.h>

#include <cstddef>
#include <stdexcept>
#include <vector>

#include <ordo/quant/f32_cpu.hpp>
#include <ordo/quant/nf4_batch_cpu.hpp>
#include <ordo/quant/nf4_cpu.hpp>

#include "../test_support.hpp"  // normal_values

namespace nf4 = ordo::quant::nf4;
namespace f32 = ordo::quant::f32;

TEST_CASE("nf4::gemv_batch: f32::gemv_batch's floats on the dequantized weights, every path and thread count") {
  struct Shape {
    std::size_t rows, cols, blocksize;
  };
  for (auto [rows, cols, bs] : {Shape{1, 64, 64}, Shape{3, 32, 32}, Shape{37, 576, 64}, Shape{300, 1536, 64},
                                Shape{9, 256, 128}, Shape{5, 768, 256}, Shape{13, 96, 32}}) {
    const auto w = normal_values(rows * cols, 0.05f, 11);
    std::vector<std::uint8_t> packed(nf4::packed_bytes(rows * cols));
    std::vector<float> absmax(nf4::block_count(rows * cols, bs)), dense(rows * cols);
    nf4::quantize_blocks(w.data(), rows * cols, packed.data(), absmax.data(), {.blocksize = bs});
    nf4::dequantize_blocks(packed.data(), absmax.data(), rows * cols, dense.data(), {.blocksize = bs});
    for (std::size_t n : {1u, 2u, 3u, 4u, 5u, 7u, 8u, 9u}) {
      CAPTURE(rows);
      CAPTURE(cols);
      CAPTURE(bs);
      CAPTURE(n);
      const std::size_t ldx = cols + 5, ldy = rows + 3;  // rows of x and y further apart than their length
      const auto x = normal_values(n * ldx, 1.0f, 12);
      for (auto isa : nf4::runnable_isas()) {
        CAPTURE(static_cast<int>(isa));
        std::vector<float> one(n * ldy, -7.0f), many(n * ldy, -7.0f), want(n * ldy, -7.0f);
        nf4::gemv_batch(packed.data(), absmax.data(), rows, cols, x.data(), n, ldx, one.data(), ldy,
                        {.blocksize = bs, .threads = 1, .isa = isa});
        nf4::gemv_batch(packed.data(), absmax.data(), rows, cols, x.data(), n, ldx, many.data(), ldy,
                        {.blocksize = bs, .threads = 3, .isa = isa});
        f32::gemv_batch(dense.data(), rows, cols, cols, x.data(), n, ldx, want.data(), ldy, {.threads = 1, .isa = isa});
        for (std::size_t i = 0; i < n * ldy; ++i) {
          CHECK(one[i] == want[i]);  // the gaps between y rows stay -7 in all three
          CHECK(many[i] == want[i]);
        }
      }
    }
  }
}

TEST_CASE("nf4::gemv_batch: rows that are not whole blocks, close rows of x or y and bad blocksizes are rejected") {
  std::vector<std::uint8_t> packed(64);
  std::vector<float> absmax(4, 1.0f), x(256, 1.0f), y(16);
  CHECK_THROWS_AS(nf4::gemv_batch(packed.data(), absmax.data(), 2, 48, x.data(), 2, 48, y.data(), 2, {.blocksize = 32}),
                  std::invalid_argument);  // 48 columns: a block would span two rows
  CHECK_THROWS_AS(nf4::gemv_batch(packed.data(), absmax.data(), 2, 64, x.data(), 2, 63, y.data(), 2), std::invalid_argument);
  CHECK_THROWS_AS(nf4::gemv_batch(packed.data(), absmax.data(), 2, 64, x.data(), 2, 64, y.data(), 1), std::invalid_argument);
  CHECK_THROWS_AS(nf4::gemv_batch(packed.data(), absmax.data(), 2, 64, x.data(), 2, 64, y.data(), 2, {.blocksize = 48}),
                  std::invalid_argument);
  nf4::gemv_batch(packed.data(), absmax.data(), 2, 64, x.data(), 0, 64, y.data(), 2);  // no rows: nothing to do
}
