// ordo::io::gguf: metadata of every value type, tensor infos, alignment, versions 2 and 3, the
// tokenizer metadata, and dequantization equal, bit for bit, to gguf-py's reference values.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <bit>
#include <cstring>
#include <limits>
#include <stdexcept>

#include <ordo/io/gguf.hpp>
#include <ordo/io/gguf_writer.hpp>
#include <ordo/quant/float_bits.hpp>  // the reference roundings of F16 and BF16
#include <ordo/io/safetensors.hpp>  // the reference values are stored as safetensors

#include "io_test_support.hpp"

namespace gg = ordo::io::gguf;
using ordo::io::format_error;
using ordo_io_test::fixture;
using ordo_io_test::ScratchDir;

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

TEST_CASE("gguf::Writer: metadata of every kind and F32/F16/BF16/Q8_0 tensors read back by gg::File") {
  ScratchDir dir;
  const auto path = dir / "written.gguf";
  std::vector<float> values(2 * 64);
  for (std::size_t i = 0; i < values.size(); ++i)
    values[i] = std::sin(0.37f * static_cast<float>(i)) * (i % 7 == 0 ? 5.0f : 1.0f);
  values[5] = 0.0f;
  gg::Writer w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 3);
  w.set_i32("x.i32", -4);
  w.set_u64("x.u64", std::uint64_t{1} << 40);
  w.set_f32("x.f32", 0.25f);
  w.set_bool("x.bool", true);
  w.set_u32_array("x.widths", {10, 20, 30});
  w.set_i32_array("x.types", {1, 3, -1});
  w.set_f32_array("x.scores", {0.5f, -1.5f});
  w.set_string_array("x.tokens", {"a", "", "\xC4\xA0" "b"});
  w.set_u32("llama.block_count", 4);  // set twice: the last value
  for (const auto type : {gg::TensorType::F32, gg::TensorType::F16, gg::TensorType::BF16, gg::TensorType::Q8_0})
    w.add_tensor(std::string("t.") + std::string(gg::type_traits(static_cast<std::uint32_t>(type))->name), type,
                 {2, 64}, [&] { return values; });
  w.add_tensor("odd.q8", gg::TensorType::Q8_0, {2, 8}, [&] { return std::vector<float>(16, 1.5f); });
  CHECK(w.type_of("odd.q8") == gg::TensorType::F16);  // rows of 8: not Q8_0 blocks
  w.write(path);

  const gg::File f(path);
  CHECK(f.version() == 3);
  CHECK(f.at("general.architecture").as_string() == "llama");
  CHECK(f.at("llama.block_count").as_uint() == 4);
  CHECK(f.metadata().size() == 10);  // the repeated key kept one place
  CHECK(f.at("x.i32").as_int() == -4);
  CHECK(f.at("x.u64").as_uint() == (std::uint64_t{1} << 40));
  CHECK(f.at("x.f32").as_double() == 0.25);
  CHECK(f.at("x.bool").as_bool());
  CHECK(f.at("x.widths").array<std::uint32_t>() == std::vector<std::uint32_t>{10, 20, 30});
  CHECK(f.at("x.types").array<std::int32_t>() == std::vector<std::int32_t>{1, 3, -1});
  CHECK(f.at("x.scores").array<float>() == std::vector<float>{0.5f, -1.5f});
  CHECK(f.at("x.tokens").strings() == std::vector<std::string_view>{"a", "", "\xC4\xA0" "b"});
  CHECK(f.tensors().size() == 5);
  for (const auto& t : f.tensors()) CHECK(t.shape() == std::vector<std::uint64_t>{2, t.name == "odd.q8" ? 8u : 64u});
  CHECK(f.dequantize(f.tensor("t.F32")) == values);
  const auto f16 = f.dequantize(f.tensor("t.F16"));
  const auto bf16 = f.dequantize(f.tensor("t.BF16"));
  const auto q8 = f.dequantize(f.tensor("t.Q8_0"));
  for (std::size_t i = 0; i < values.size(); ++i) {
    CAPTURE(i);
    CHECK(f16[i] == ordo::quant::to_float(ordo::quant::to_f16(values[i])));
    CHECK(bf16[i] == ordo::quant::to_float(ordo::quant::to_bf16(values[i])));
    // Q8_0: the block's scale d = max|x| / 127 (as fp16), each value within half a step.
    float amax = 0.0f;
    for (std::size_t j = i / 32 * 32; j < i / 32 * 32 + 32; ++j) amax = std::max(amax, std::fabs(values[j]));
    const float d = ordo::quant::to_float(ordo::quant::to_f16(amax / 127.0f));
    CHECK(std::fabs(q8[i] - values[i]) <= 0.5f * d + 1e-3f * amax);
  }
  CHECK(q8[5] == 0.0f);
  CHECK(f.dequantize(f.tensor("odd.q8")) == std::vector<float>(16, 1.5f));

  // A producer that gives the wrong count: an error naming the tensor, and no file.
  gg::Writer bad;
  bad.add_tensor("short", gg::TensorType::F32, {4}, [] { return std::vector<float>(3); });
  const auto bad_path = dir / "bad.gguf";
  CHECK_THROWS_WITH_AS(bad.write(bad_path), doctest::Contains("tensor 'short' produced 3 values for 4"),
                       std::invalid_argument);
  CHECK_FALSE(std::filesystem::exists(bad_path));
  CHECK_THROWS_AS(bad.add_tensor("short", gg::TensorType::F32, {4}, [] { return std::vector<float>(4); }),
                  std::invalid_argument);  // a name twice
  CHECK_THROWS_AS(bad.add_tensor("q4", gg::TensorType::Q4_0, {32}, [] { return std::vector<float>(32); }),
                  std::invalid_argument);  // a type ordo does not write
}
