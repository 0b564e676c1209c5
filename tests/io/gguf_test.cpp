// ordo::io::gguf: metadata of every value type, tensor infos, alignment, versions 2 and 3, the
// tokenizer metadata, and dequantization equal, bit for bit, to gguf-py's reference values.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <stdexcept>

#include <ordo/io/gguf.hpp>
#include <ordo/io/safetensors.hpp>  // the reference values are stored as safetensors

#include "io_test_support.hpp"

namespace gg = ordo::io::gguf;
using ordo::io::format_error;
using ordo_io_test::fixture;

TEST_CASE("gguf: metadata of every value type") {
  const gg::File f(fixture("gguf/all_types.gguf"));
  CHECK(f.version() == 3);
  CHECK(f.header().alignment == 32);
  CHECK(f.header().data_offset % 32 == 0);

  CHECK(f.at("general.architecture").as_string() == "llama");
  CHECK(f.at("test.u8").get<std::uint8_t>() == 200);
  CHECK(f.at("test.i8").get<std::int8_t>() == -100);
  CHECK(f.at("test.u16").get<std::uint16_t>() == 60000);
  CHECK(f.at("test.i16").get<std::int16_t>() == -30000);
  CHECK(f.at("test.u32").get<std::uint32_t>() == 4000000000u);
  CHECK(f.at("test.i32").get<std::int32_t>() == -2000000000);
  CHECK(f.at("test.f32").get<float>() == 0.25f);
  CHECK(f.at("test.bool").get<bool>() == true);
  CHECK(f.at("test.string").as_string() == "h\xc3\xa9llo, GGUF \xe2\x9c\x93");
  CHECK(f.at("test.empty_string").as_string().empty());
  CHECK(f.at("test.u64").get<std::uint64_t>() == (std::uint64_t(1) << 63) + 5);
  CHECK(f.at("test.i64").get<std::int64_t>() == -(std::int64_t(1) << 62));
  CHECK(f.at("test.f64").get<double>() == -1.5e300);

  // conversions between integer types, and their limits
  CHECK(f.at("test.u8").as_uint() == 200);
  CHECK(f.at("test.i32").as_int() == -2000000000);
  CHECK(f.at("test.u32").as_double() == 4000000000.0);
  CHECK_THROWS_WITH_AS(f.at("test.i8").as_uint(), doctest::Contains("key 'test.i8': holds the negative value -100"),
                       format_error);
  CHECK_THROWS_WITH_AS(f.at("test.u64").as_int(), doctest::Contains("beyond int64"), format_error);
  CHECK_THROWS_WITH_AS(f.at("test.u32").get<std::int32_t>(),
                       doctest::Contains("all_types.gguf: key 'test.u32': holds uint32, not int32"), format_error);
  CHECK_THROWS_WITH_AS(f.at("test.string").as_uint(), doctest::Contains("holds string, not an integer"), format_error);
  CHECK_THROWS_WITH_AS(f.at("no.such.key"), doctest::Contains("key 'no.such.key': not in the metadata"), format_error);
  CHECK(f.find("no.such.key") == nullptr);

  // arrays
  CHECK(f.at("test.array_i16").array<std::int16_t>() == std::vector<std::int16_t>{-1, 2, -3});
  CHECK(f.at("test.array_f32").array<float>() == std::vector<float>{0.5f, -2.0f});
  CHECK(f.at("test.array_bool").array<bool>() == std::vector<bool>{true, false, true});
  CHECK(f.at("test.array_u64").array<std::uint64_t>() == std::vector<std::uint64_t>{1, ~std::uint64_t(0)});
  CHECK(f.at("test.array_strings").strings() == std::vector<std::string_view>{"a", "", "ccc"});
  CHECK_THROWS_WITH_AS(f.at("test.array_i16").array<std::int32_t>(),
                       doctest::Contains("holds an array of 3 int16, not an array of int32"), format_error);

  std::vector<std::int64_t> flat;
  for (const gg::Value& x : f.at("test.array_i16").elements()) flat.push_back(x.as_int());
  CHECK(flat == std::vector<std::int64_t>{-1, 2, -3});
  CHECK(f.at("test.array_f32").elements().at(1).as_double() == -2.0);
  CHECK(f.at("test.array_strings").elements().at(2).as_string() == "ccc");
  CHECK_THROWS_WITH_AS(f.at("test.u8").size(), doctest::Contains("holds uint8, not array"), format_error);

  const gg::Value& nested = f.at("test.nested");
  CHECK(nested.element_type() == gg::ValueType::ARRAY);
  CHECK(nested.size() == 3);
  const auto outer = nested.elements();
  REQUIRE(outer.size() == 3);
  std::vector<std::vector<std::int64_t>> got;
  for (const gg::Value& inner : outer) {
    std::vector<std::int64_t> row;
    for (const gg::Value& x : inner.elements()) row.push_back(x.as_int());
    got.push_back(row);
  }
  CHECK(got == std::vector<std::vector<std::int64_t>>{{1, 2}, {3}, {4, 5, 6}});
  CHECK(outer[1].key() == "test.nested[1]");
}

TEST_CASE("gguf: tensor infos, dims and shapes") {
  const gg::File f(fixture("gguf/all_types.gguf"));
  CHECK(f.tensors().size() == 18);
  const gg::TensorInfo& q4k = f.tensor("q4_k");
  CHECK(q4k.type == gg::TensorType::Q4_K);
  CHECK(q4k.dims == std::vector<std::uint64_t>{256, 2, 2});  // GGUF order: fastest first
  CHECK(q4k.shape() == std::vector<std::uint64_t>{2, 2, 256});
  CHECK(q4k.numel == 1024);
  CHECK(q4k.nbytes == 4 * 144);
  CHECK(f.data(q4k).size() == 4 * 144);
  CHECK(f.tensor("f32").shape() == std::vector<std::uint64_t>{3, 8});
  CHECK(f.tensor("q8_0").nbytes == 9 * 34);
  for (const gg::TensorInfo& t : f.tensors()) CHECK(t.offset % f.header().alignment == 0);
  CHECK_THROWS_WITH_AS(f.tensor("missing"), doctest::Contains("tensor 'missing': not in the file"), format_error);
}

TEST_CASE("gguf: dequantization equals gguf-py's, bit for bit, for every supported type") {
  const gg::File f(fixture("gguf/all_types.gguf"));
  const ordo::io::safetensors::File ref(fixture("gguf/all_types.reference.safetensors"));
  std::size_t compared = 0;
  for (const gg::TensorInfo& t : f.tensors()) {
    CAPTURE(t.name);
    if (t.type == gg::TensorType::IQ4_NL) continue;
    REQUIRE(gg::can_dequantize(t.type));
    const auto want_bytes = ref.data(t.name);
    REQUIRE(want_bytes.size() == t.numel * sizeof(float));
    const std::vector<float> got = f.dequantize(t);
    std::vector<float> want(got.size());
    std::memcpy(want.data(), want_bytes.data(), want_bytes.size());
    std::size_t mismatches = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      if (std::bit_cast<std::uint32_t>(got[i]) != std::bit_cast<std::uint32_t>(want[i])) {
        if (mismatches++ < 4) {
          CAPTURE(i);
          CHECK(got[i] == want[i]);
        }
      }
    }
    CHECK(mismatches == 0);
    ++compared;
  }
  // F32 F16 BF16 F64 I8 I16 I32 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K
  CHECK(compared == 17);
}

TEST_CASE("gguf: F16 specials keep their exact bits; unsupported types are named") {
  const gg::File f(fixture("gguf/all_types.gguf"));
  const auto v = f.dequantize(f.tensor("f16"));
  CHECK(std::bit_cast<std::uint32_t>(v[0]) == 0x00000000u);
  CHECK(std::bit_cast<std::uint32_t>(v[1]) == 0x80000000u);
  CHECK(v[2] == 0x1p-24f);  // smallest subnormal half
  CHECK(v[6] == 1.0f);
  CHECK(v[8] == 65504.0f);
  CHECK(v[10] == std::numeric_limits<float>::infinity());
  CHECK(std::bit_cast<std::uint32_t>(v[13]) == 0x7F802000u);  // NaN payload kept

  const gg::TensorInfo& iq = f.tensor("iq4_nl");
  CHECK_FALSE(gg::can_dequantize(iq.type));
  CHECK_THROWS_WITH_AS(f.dequantize(iq),
                       doctest::Contains("tensor 'iq4_nl': dequantization of IQ4_NL is not supported"), format_error);
  std::vector<float> small(3);
  CHECK_THROWS_WITH_AS(f.dequantize(f.tensor("f32"), small), doctest::Contains("24 elements do not fit an output of 3"),
                       format_error);
  CHECK_THROWS_AS(gg::dequantize(gg::TensorType::Q4_0, {}, std::span<float>(small)), std::invalid_argument);
}

TEST_CASE("gguf: tokenizer metadata") {
  const gg::File f(fixture("gguf/all_types.gguf"));
  const gg::TokenizerMetadata tk = f.tokenizer();
  CHECK(tk.model == "gpt2");
  CHECK(tk.pre == "smollm");
  CHECK(tk.tokens == std::vector<std::string_view>{"<|endoftext|>", "<|im_start|>", "<|im_end|>", "a", "b", "ab",
                                                   "\xc4\xa0"
                                                   "a"});
  CHECK(tk.token_types == std::vector<std::int32_t>{3, 3, 3, 1, 1, 1, 1});
  CHECK(tk.merges == std::vector<std::string_view>{"a b", "\xc4\xa0 a"});
  CHECK(tk.scores.empty());
  CHECK(tk.bos_id == 1u);
  CHECK(tk.eos_id == 2u);
  CHECK_FALSE(tk.unknown_id.has_value());
  CHECK(tk.add_bos == false);
  CHECK(tk.chat_template.starts_with("{% for m in messages %}<|im_start|>"));
}

TEST_CASE("gguf: version 2 with a custom alignment") {
  const gg::File f(fixture("gguf/v2_aligned64.gguf"));
  CHECK(f.version() == 2);
  CHECK(f.header().alignment == 64);
  CHECK(f.header().data_offset % 64 == 0);
  CHECK(f.at("general.name").as_string() == "v2 fixture");
  CHECK(f.dequantize(f.tensor("a")) == std::vector<float>{0, 1, 2, 3, 4});
  CHECK(f.dequantize(f.tensor("b")) == std::vector<float>{0, -1, -2});
  CHECK(f.tensor("b").offset == 64);
}

TEST_CASE("gguf: every truncation of a valid file is refused with a format_error") {
  const auto full = ordo_io_test::read_bytes(fixture("gguf/all_types.gguf"));
  const gg::Header h = gg::parse(full, "full");
  // the writer pads the data section after the last tensor; cutting only padding is fine
  std::uint64_t needed = h.data_offset;
  for (const auto& t : h.tensors) needed = std::max(needed, h.data_offset + t.offset + t.nbytes);
  REQUIRE(needed < full.size());
  std::size_t refused = 0;
  // every cut inside the header; inside the tensor data every 13th and the last bytes (they
  // all meet the same check, and exceptions are slow under sanitizers)
  std::size_t tried = 0;
  for (std::size_t n = 0; n < full.size(); ++n) {
    if (n > h.data_offset && n % 13 != 0 && n + 4 < needed) continue;
    ++tried;
    try {
      gg::parse(std::span(full).first(n), "cut");
      CHECK(n >= needed);
    } catch (const format_error& e) {
      ++refused;
      CHECK(std::string(e.what()).starts_with("cut: "));
    }
  }
  CHECK(refused == tried - (full.size() - needed));
}

TEST_CASE("gguf: a flipped bit in the header gives a valid file or a format_error") {
  const auto bytes = ordo_io_test::read_bytes(fixture("gguf/all_types.gguf"));
  const std::size_t header_end = gg::parse(bytes, "x").data_offset;
  std::size_t accepted = 0, refused = 0;
  for (std::size_t i = 0; i < header_end; ++i) {
    {
      auto copy = bytes;
      copy[i] ^= std::byte(1u << (i * 3 % 8));  // a different bit from byte to byte
      try {
        const gg::Header h = gg::parse(copy, "flipped");
        ++accepted;
        for (const gg::TensorInfo& t : h.tensors) {
          CHECK(h.data_offset + t.offset + t.nbytes <= copy.size());
          if (gg::can_dequantize(t.type)) {
            std::vector<float> out(t.numel);
            gg::dequantize(t.type, std::span(copy).subspan(h.data_offset + t.offset, t.nbytes), out);
          }
        }
        for (const gg::Value& v : h.metadata)
          if (v.is_array() && v.element_type() == gg::ValueType::STRING) CHECK(v.strings().size() == v.size());
      } catch (const format_error&) {
        ++refused;
      }
    }
  }
  CHECK(accepted > 0);
  CHECK(refused > 0);
}
