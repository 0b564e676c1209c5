// Broken files: each file of fixtures/malformed/ (made by make_io_fixtures.py) must be refused
// with a format_error whose message starts with the file's path and contains the expected text
// (fixtures/malformed/expected.json). Then the fuzzers' crash inputs (fixtures/regressions/)
// and minimized fuzzing corpora (fixtures/fuzz_corpus/) are replayed: each must parse or be
// refused with a format_error, nothing else (and no sanitizer report in the ASan/UBSan build).
#include <doctest/doctest.h>

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include <ordo/io/gguf.hpp>
#include <ordo/io/safetensors.hpp>

#include "io_test_support.hpp"

using ordo::io::format_error;
using ordo_io_test::fixture;

namespace {

void open_with(const std::string& reader, const std::filesystem::path& path) {
  if (reader == "safetensors")
    ordo::io::safetensors::File f(path);
  else if (reader == "index")
    ordo::io::safetensors::read_index(path);
  else if (reader == "gguf")
    ordo::io::gguf::File f(path);
  else if (reader == "tokenizer")
    ordo::io::gguf::File(path).tokenizer();
  else
    FAIL("unknown reader " << reader);
}

/// What the fuzz targets do with one input (fuzz/*.cpp), minus the fuzzer.
void replay(const std::string& kind, const std::vector<std::byte>& data) {
  if (kind == "safetensors") {
    ordo::io::safetensors::parse_header(data, "regression");
  } else {
    const auto h = ordo::io::gguf::parse(data, "regression");
    for (const auto& v : h.metadata) {
      if (!v.is_array()) continue;
      if (v.element_type() == ordo::io::gguf::ValueType::STRING)
        (void)v.strings();
      else
        (void)v.elements();
    }
    for (const auto& t : h.tensors) {
      if (!ordo::io::gguf::can_dequantize(t.type) || t.numel > (1u << 20)) continue;
      std::vector<float> out(t.numel);
      ordo::io::gguf::dequantize(t.type, std::span(data).subspan(h.data_offset + t.offset, t.nbytes), out);
    }
  }
}

}  // namespace

TEST_CASE("malformed files are refused with the expected message") {
  const auto dir = fixture("malformed");
  std::ifstream in(dir / "expected.json");
  REQUIRE(in);
  const auto cases = nlohmann::json::parse(in);
  REQUIRE(cases.size() >= 60);
  std::set<std::string> listed;
  for (const auto& c : cases) {
    const std::string file = c.at("file"), reader = c.at("reader"), expect = c.at("expect");
    listed.insert(file);
    const auto path = dir / file;
    CAPTURE(file);
    std::string message = "(no exception)";
    try {
      open_with(reader, path);
    } catch (const format_error& e) {
      message = e.what();
    }
    CAPTURE(message);
    CHECK(message.starts_with(path.string() + ": "));
    CHECK(message.find(expect) != std::string::npos);
  }
  // every file in the corpus has an expectation
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename() != "expected.json") CHECK(listed.contains(e.path().filename().string()));
}

TEST_CASE("fuzzing inputs replay: each parses or is refused with a format_error") {
  // fixtures/regressions/<kind>/*: inputs that once crashed a fuzz target (kept with the fix)
  std::size_t regressions = 0;
  for (const std::string kind : {"safetensors", "gguf"}) {
    const auto dir = fixture("regressions/" + kind);
    if (!std::filesystem::exists(dir)) continue;
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (!e.is_regular_file() || e.path().filename().string().starts_with(".")) continue;
      CAPTURE(e.path().string());
      std::string outcome = "parsed";
      try {
        replay(kind, ordo_io_test::read_bytes(e.path()));
      } catch (const format_error&) {
        outcome = "refused";
      } catch (const std::exception& x) {
        outcome = std::string("unexpected exception: ") + x.what();
      }
      CAPTURE(outcome);
      CHECK((outcome == "parsed" || outcome == "refused"));
      ++regressions;
    }
  }
  MESSAGE(regressions << " regression inputs replayed");

  // fixtures/fuzz_corpus/<target>.bin: records of a u32 length and the input (fuzz/pack_corpus.py)
  for (const std::string kind : {"safetensors", "gguf"}) {
    const auto packed = ordo_io_test::read_bytes(fixture("fuzz_corpus/" + kind + ".bin"));
    REQUIRE(packed.size() > 1000);
    std::size_t pos = 0, inputs = 0, parsed = 0, refused = 0;
    while (pos < packed.size()) {
      REQUIRE(pos + 4 <= packed.size());
      const auto len = ordo::io::detail::load_le<std::uint32_t>(packed.data() + pos);
      pos += 4;
      REQUIRE(pos + len <= packed.size());
      const std::vector<std::byte> input(packed.begin() + static_cast<std::ptrdiff_t>(pos),
                                         packed.begin() + static_cast<std::ptrdiff_t>(pos + len));
      pos += len;
      ++inputs;
      try {
        replay(kind, input);
        ++parsed;
      } catch (const format_error&) {
        ++refused;
      }
    }
    CAPTURE(kind);
    CHECK(inputs >= 50);
    CHECK(parsed + refused == inputs);
    CHECK(parsed > 0);  // the corpora hold valid files too, not only refused ones
    CHECK(refused > 0);
  }
}
