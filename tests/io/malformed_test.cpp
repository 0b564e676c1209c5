// Broken files: each file of fixtures/malformed/ (made by make_io_fixtures.py) must be refused
// with a format_error whose message starts with the file's path and contains the expected text
// (fixtures/malformed/expected.json). Then the fuzzers' crash inputs (fixtures/regressions/)
// are replayed: each must parse or be refused with a format_error, nothing else.
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
    if (reader == "safetensors") ordo::io::safetensors::File f(path);
    else if (reader == "index") ordo::io::safetensors::read_index(path);
    else if (reader == "gguf") ordo::io::gguf::File f(path);
    else if (reader == "tokenizer") ordo::io::gguf::File(path).tokenizer();
    else FAIL("unknown reader " << reader);
}

/// What the fuzz targets do with one input (fuzz/*.cpp), minus the fuzzer.
void replay(const std::string& kind, const std::vector<std::byte>& data) {
    if (kind == "safetensors") {
        ordo::io::safetensors::parse_header(data, "regression");
    } else {
        const auto h = ordo::io::gguf::parse(data, "regression");
        for (const auto& v : h.metadata) {
            if (!v.is_array()) continue;
            if (v.element_type() == ordo::io::gguf::ValueType::STRING) (void)v.strings();
            else (void)v.elements();
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

TEST_CASE("fuzzer regressions replay without crashing") {
    std::size_t replayed = 0;
    for (const std::string kind : {"safetensors", "gguf"}) {
        const auto dir = fixture("regressions/" + kind);
        if (!std::filesystem::exists(dir)) continue;
        for (const auto& e : std::filesystem::directory_iterator(dir)) {
            if (!e.is_regular_file() || e.path().filename().string().starts_with(".")) continue;
            CAPTURE(e.path().string());
            const auto data = ordo_io_test::read_bytes(e.path());
            std::string outcome = "parsed";
            try {
                replay(kind, data);
            } catch (const format_error&) {
                outcome = "refused";
            } catch (const std::exception& x) {
                outcome = std::string("unexpected exception: ") + x.what();
            }
            CAPTURE(outcome);
            CHECK((outcome == "parsed" || outcome == "refused"));
            ++replayed;
        }
    }
    MESSAGE(replayed << " regression inputs replayed");
}
