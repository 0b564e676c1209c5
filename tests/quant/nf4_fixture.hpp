// Reader of fixtures/nf4_bitsandbytes.bin and fixtures/nf4_bitsandbytes_cuda.bin (formats:
// make_nf4_fixtures.py, make_nf4_cuda_fixture.py), in ORDO_QUANT_FIXTURES; shared by the CPU
// fixture test and the CUDA kernels' test (tests/kernels/). Test-only: checks with doctest's REQUIRE.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include <ordo/quant/nf4_cpu.hpp>

namespace ordo_test::nf4_fixture {

namespace nf4 = ordo::quant::nf4;

struct Reader {
  std::vector<char> data;
  std::size_t pos = 0;
  template <class T>
  T get() {
    T v;
    REQUIRE(pos + sizeof(T) <= data.size());
    std::memcpy(&v, data.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  template <class T>
  std::vector<T> array(std::size_t n) {
    REQUIRE(pos + n * sizeof(T) <= data.size());
    std::vector<T> v(n);
    if (n) std::memcpy(v.data(), data.data() + pos, n * sizeof(T));
    pos += n * sizeof(T);
    return v;
  }
};

struct Case {
  std::string name;
  std::uint32_t dtype = 0;  // 0 f32, 1 f16, 2 bf16
  std::size_t n = 0, blocksize = 0;
  bool nested = false;
  std::vector<float> x;            // the input, widened exactly
  std::vector<std::uint16_t> x16;  // the input bits for f16/bf16
  std::vector<std::uint8_t> bnb_packed, cuda_packed;
  std::vector<float> bnb_absmax, cuda_absmax;
  std::vector<float> bnb_dequant32;          // dtype f32
  std::vector<std::uint16_t> bnb_dequant16;  // dtype f16 / bf16 bits
  float bnb_offset = 0;
  std::vector<std::uint8_t> bnb_codes, cuda_codes;
  std::vector<float> bnb_absmax2, cuda_absmax2, bnb_scales;
};

struct Fixture {
  std::vector<float> dynamic_map, nf4_code;
  std::vector<float> ties8;                         // 256-blocks of 8-bit midpoints and neighbours
  std::vector<std::uint8_t> ties8_cuda, ties8_bnb;  // their codes: CUDA rule, bitsandbytes' CPU
  std::vector<Case> cases;
};

inline float widen(std::uint16_t bits, std::uint32_t dtype) {
  return dtype == 1 ? ordo::quant::to_float(ordo::quant::f16{bits}) : ordo::quant::to_float(ordo::quant::bf16{bits});
}

inline const Fixture& fixture() {
  static const Fixture f = [] {
    const std::string path = std::string(ORDO_QUANT_FIXTURES) + "/nf4_bitsandbytes.bin";
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    Reader r{std::vector<char>(std::istreambuf_iterator<char>(in), {})};
    Fixture fx;
    const auto magic = r.array<char>(8);
    if (std::string(magic.data(), 7) != "ORDONF4") throw std::runtime_error("not an ordo NF4 fixture");
    if (r.get<std::uint32_t>() != 2) throw std::runtime_error("unknown fixture version");
    const auto count = r.get<std::uint32_t>();
    fx.dynamic_map = r.array<float>(256);
    fx.nf4_code = r.array<float>(16);
    const auto ties = r.get<std::uint32_t>();
    fx.ties8 = r.array<float>(ties);
    fx.ties8_cuda = r.array<std::uint8_t>(ties);
    fx.ties8_bnb = r.array<std::uint8_t>(ties);
    for (std::uint32_t c = 0; c < count; ++c) {
      Case k;
      const auto len = r.get<std::uint32_t>();
      const auto name = r.array<char>(len);
      k.name.assign(name.begin(), name.end());
      k.dtype = r.get<std::uint32_t>();
      k.n = r.get<std::uint64_t>();
      k.blocksize = r.get<std::uint32_t>();
      k.nested = (r.get<std::uint32_t>() & 1) != 0;
      const std::size_t blocks = nf4::block_count(k.n, k.blocksize), bytes = nf4::packed_bytes(k.n);
      if (k.dtype == 0) {
        k.x = r.array<float>(k.n);
      } else {
        k.x16 = r.array<std::uint16_t>(k.n);
        for (auto b : k.x16) k.x.push_back(widen(b, k.dtype));
      }
      k.bnb_packed = r.array<std::uint8_t>(bytes);
      k.bnb_absmax = r.array<float>(blocks);
      k.cuda_packed = r.array<std::uint8_t>(bytes);
      k.cuda_absmax = r.array<float>(blocks);
      if (k.dtype == 0)
        k.bnb_dequant32 = r.array<float>(k.n);
      else
        k.bnb_dequant16 = r.array<std::uint16_t>(k.n);
      if (k.nested) {
        const std::size_t blocks2 = nf4::absmax2_count(blocks);
        k.bnb_offset = r.get<float>();
        k.bnb_codes = r.array<std::uint8_t>(blocks);
        k.bnb_absmax2 = r.array<float>(blocks2);
        k.bnb_scales = r.array<float>(blocks);
        k.cuda_codes = r.array<std::uint8_t>(blocks);
        k.cuda_absmax2 = r.array<float>(blocks2);
      }
      fx.cases.push_back(std::move(k));
    }
    if (r.pos != r.data.size()) throw std::runtime_error("trailing bytes in the fixture");
    return fx;
  }();
  return f;
}

// fixtures/nf4_bitsandbytes_cuda.bin (make_nf4_cuda_fixture.py, run on a GPU): inputs and what
// bitsandbytes' CUDA kernels returned for them.
struct CudaCase {
  std::string name;
  std::uint32_t dtype = 0;  // 0 f32, 1 f16, 2 bf16
  std::size_t n = 0, blocksize = 0;
  std::vector<float> x;            // the input, widened exactly
  std::vector<std::uint16_t> x16;  // the input bits for f16/bf16
  std::vector<std::uint8_t> packed;
  std::vector<float> absmax;
};

inline const std::vector<CudaCase>& cuda_fixture() {
  static const std::vector<CudaCase> cases = [] {
    const std::string path = std::string(ORDO_QUANT_FIXTURES) + "/nf4_bitsandbytes_cuda.bin";
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    Reader r{std::vector<char>(std::istreambuf_iterator<char>(in), {})};
    const auto magic = r.array<char>(8);
    if (std::string(magic.data(), 8) != "ORDONF4C") throw std::runtime_error("not an ordo NF4 CUDA fixture");
    if (r.get<std::uint32_t>() != 1) throw std::runtime_error("unknown CUDA fixture version");
    const auto count = r.get<std::uint32_t>();
    std::vector<CudaCase> out;
    for (std::uint32_t c = 0; c < count; ++c) {
      CudaCase k;
      const auto name = r.array<char>(r.get<std::uint32_t>());
      k.name.assign(name.begin(), name.end());
      k.dtype = r.get<std::uint32_t>();
      k.n = r.get<std::uint64_t>();
      k.blocksize = r.get<std::uint32_t>();
      if (k.dtype == 0) {
        k.x = r.array<float>(k.n);
      } else {
        k.x16 = r.array<std::uint16_t>(k.n);
        for (auto b : k.x16) k.x.push_back(widen(b, k.dtype));
      }
      k.packed = r.array<std::uint8_t>(nf4::packed_bytes(k.n));
      k.absmax = r.array<float>(nf4::block_count(k.n, k.blocksize));
      out.push_back(std::move(k));
    }
    if (r.pos != r.data.size()) throw std::runtime_error("trailing bytes in the CUDA fixture");
    return out;
  }();
  return cases;
}

}  // namespace ordo_test::nf4_fixture
