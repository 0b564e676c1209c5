// ordo::io::safetensors: reading files written by the safetensors package, writing files
// atomically, sharded checkpoints, and every truncation of a valid file being refused.
#include <doctest/doctest.h>

#include <bit>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include <sys/wait.h>  // waitpid
#include <unistd.h>    // fork, getpid

#include <fstream>

#include <ordo/io/atomic_directory.hpp>
#include <ordo/io/safetensors.hpp>

#include "io_test_support.hpp"

namespace st = ordo::io::safetensors;
using ordo::io::format_error;
using ordo_io_test::fixture;
using ordo_io_test::ScratchDir;

namespace {

template <class T>
std::vector<T> values(const st::File& f, std::string_view name) {
  const auto bytes = f.data(name);
  REQUIRE(bytes.size() % sizeof(T) == 0);
  std::vector<T> v(bytes.size() / sizeof(T));
  std::memcpy(v.data(), bytes.data(), bytes.size());
  return v;
}

std::span<const std::byte> as_bytes_of(const std::vector<float>& v) { return std::as_bytes(std::span(v)); }

}  // namespace

TEST_CASE("safetensors: every dtype of a file written by the safetensors package") {
  const st::File f(fixture("safetensors/dtypes.safetensors"));
  CHECK(f.tensors().size() == 12);
  CHECK(f.metadata() == std::map<std::string, std::string>{{"format", "pt"}, {"note", "ordo fixture"}});

  const st::TensorInfo& f32 = f.at("f32");
  CHECK(f32.dtype == st::Dtype::F32);
  CHECK(f32.shape == std::vector<std::uint64_t>{2, 3});
  CHECK(f32.numel() == 6);
  CHECK(values<float>(f, "f32") == std::vector<float>{0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 2.5f});
  CHECK(values<double>(f, "f64") == std::vector<double>{1.5, -2.25});
  CHECK(values<std::uint16_t>(f, "f16") == std::vector<std::uint16_t>{0x3C00, 0xC000, 0x7BFF});
  CHECK(f.at("bf16").dtype == st::Dtype::BF16);
  const auto bf = values<std::uint16_t>(f, "bf16");
  CHECK(ordo::io::detail::bf16_to_float(bf[0]) == 1.0f);
  CHECK(ordo::io::detail::bf16_to_float(bf[1]) == -3.0f);
  CHECK(values<std::int64_t>(f, "i64") == std::vector<std::int64_t>{-(std::int64_t(1) << 40), 7});
  CHECK(values<std::int32_t>(f, "i32") == std::vector<std::int32_t>{-5, 6});
  CHECK(f.at("i32").shape == std::vector<std::uint64_t>{1, 2});
  CHECK(values<std::int16_t>(f, "i16") == std::vector<std::int16_t>{-300, 300});
  CHECK(values<std::int8_t>(f, "i8") == std::vector<std::int8_t>{-128, -1, 0, 127});
  CHECK(values<std::uint8_t>(f, "u8") == std::vector<std::uint8_t>{0, 1, 254, 255});
  CHECK(f.at("bool").dtype == st::Dtype::BOOL);
  CHECK(values<std::uint8_t>(f, "bool") == std::vector<std::uint8_t>{1, 0, 1});

  const st::TensorInfo& scalar = f.at("scalar");
  CHECK(scalar.shape.empty());
  CHECK(scalar.numel() == 1);
  CHECK(values<float>(f, "scalar") == std::vector<float>{42.0f});
  const st::TensorInfo& empty = f.at("empty");
  CHECK(empty.shape == std::vector<std::uint64_t>{0, 4});
  CHECK(empty.nbytes() == 0);
  CHECK(f.data("empty").empty());

  CHECK(f.find("nope") == nullptr);
  CHECK_THROWS_WITH_AS(f.at("nope"), doctest::Contains("tensor 'nope': not in the file"), format_error);
}

TEST_CASE("safetensors: dtype names and sizes") {
  for (st::Dtype d : st::all_dtypes) {
    CHECK(st::dtype_from_name(st::dtype_name(d)) == d);
    CHECK(st::dtype_size(d) >= 1);
  }
  CHECK(st::dtype_size(st::Dtype::BF16) == 2);
  CHECK(st::dtype_size(st::Dtype::I64) == 8);
  CHECK_FALSE(st::dtype_from_name("F4").has_value());
  CHECK_FALSE(st::dtype_from_name("f32").has_value());
}

TEST_CASE("safetensors: an empty header and a metadata-only header are valid") {
  const std::string a = std::string("\x02\0\0\0\0\0\0\0", 8) + "{}";
  const auto ha = st::parse_header(std::as_bytes(std::span(a)), "a");
  CHECK(ha.tensors.empty());
  CHECK(ha.data_offset() == 10);
  const std::string meta = R"({"__metadata__":{"k":"v"}})";
  std::string b(8, '\0');
  b[0] = static_cast<char>(meta.size());
  b += meta;
  const auto hb = st::parse_header(std::as_bytes(std::span(b)), "b");
  CHECK(hb.metadata.at("k") == "v");
}

TEST_CASE("safetensors: write then read gives the same tensors, aligned, with metadata") {
  ScratchDir dir;
  const std::vector<float> w = {1.0f, -2.0f, 3.5f, 0.0f, 1e-30f, -7.25f};
  const std::vector<std::uint16_t> h = {0x3C00, 0x0001, 0xFC00};
  const std::vector<std::int64_t> ids = {-1, 1LL << 50};
  const std::vector<std::uint8_t> mask = {1, 0, 1, 1, 0};
  const std::vector<st::TensorEntry> entries = {
      {"mask", st::Dtype::BOOL, {5}, std::as_bytes(std::span(mask))},
      {"w", st::Dtype::F32, {2, 3}, as_bytes_of(w)},
      {"h", st::Dtype::F16, {3}, std::as_bytes(std::span(h))},
      {"ids", st::Dtype::I64, {2}, std::as_bytes(std::span(ids))},
      {"none", st::Dtype::F32, {0}, {}},
  };
  const auto path = dir / "out.safetensors";
  st::write(path, entries, {{"format", "pt"}});

  const st::File f(path);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.tensors().size() == entries.size());
  CHECK(f.header().data_offset() % 8 == 0);
  for (const st::TensorEntry& e : entries) {
    CAPTURE(e.name);
    const st::TensorInfo& t = f.at(e.name);
    CHECK(t.dtype == e.dtype);
    CHECK(t.shape == e.shape);
    CHECK(t.begin % st::dtype_size(t.dtype) == 0);  // largest elements first keeps alignment
    const auto got = f.data(t);
    REQUIRE(got.size() == e.data.size());
    if (!got.empty()) CHECK(std::memcmp(got.data(), e.data.data(), got.size()) == 0);
  }
  // the text is plain JSON padded with spaces, as other implementations expect
  const auto raw = ordo_io_test::read_bytes(path);
  const std::size_t n = f.header().header_size;
  CHECK(n % 8 == 0);
  CHECK(static_cast<char>(raw[8]) == '{');
}

TEST_CASE("safetensors: the writer refuses inconsistent entries, naming the tensor") {
  ScratchDir dir;
  const std::vector<float> v = {1.0f, 2.0f};
  const auto path = dir / "bad.safetensors";
  std::vector<st::TensorEntry> e = {{"w", st::Dtype::F32, {3}, as_bytes_of(v)}};
  CHECK_THROWS_WITH_AS(st::write(path, e),
                       doctest::Contains("tensor 'w': shape [3] x F32 is 12 bytes but 8 were given"), format_error);
  e = {{"w", st::Dtype::F32, {2}, as_bytes_of(v)}, {"w", st::Dtype::F32, {2}, as_bytes_of(v)}};
  CHECK_THROWS_WITH_AS(st::write(path, e), doctest::Contains("tensor 'w': given twice"), format_error);
  e = {{"__metadata__", st::Dtype::F32, {2}, as_bytes_of(v)}};
  CHECK_THROWS_WITH_AS(st::write(path, e), doctest::Contains("reserved"), format_error);
  CHECK_FALSE(std::filesystem::exists(path));
  CHECK(std::filesystem::is_empty(dir.path()));  // no temporary file left behind
}

TEST_CASE("atomic write: a failure midway leaves the old file and no temporary file") {
  ScratchDir dir;
  const auto path = dir / "model.safetensors";
  const std::vector<float> one = {1.0f};
  st::write(path, std::vector<st::TensorEntry>{{"a", st::Dtype::F32, {1}, as_bytes_of(one)}});
  const auto before = ordo_io_test::read_bytes(path);

  CHECK_THROWS_AS(ordo::io::write_file_atomically(path,
                                                  [](ordo::io::AtomicSink& sink) {
                                                    const std::string part = "partial";
                                                    sink.write(std::as_bytes(std::span(part)));
                                                    throw std::runtime_error("killed");
                                                  }),
                  std::runtime_error);
  CHECK(ordo_io_test::read_bytes(path) == before);
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  CHECK(files == 1);

  // and a successful write replaces it whole
  const std::vector<float> two = {2.0f, 3.0f};
  st::write(path, std::vector<st::TensorEntry>{{"b", st::Dtype::F32, {2}, as_bytes_of(two)}});
  const st::File f(path);
  CHECK_FALSE(f.contains("a"));
  CHECK(f.at("b").numel() == 2);
}

TEST_CASE("atomic directory: a killed write's temporary directory goes at the next write; a live one stays") {
  ScratchDir dir;
  const pid_t child = ::fork();  // a process id that is certainly no longer running
  if (child == 0) ::_exit(0);
  REQUIRE(child > 0);
  ::waitpid(child, nullptr, 0);
  const auto stale = dir / (".out.tmp." + std::to_string(child) + ".AbC123");
  const auto live = dir / (".out.tmp." + std::to_string(::getpid()) + ".XyZ789");  // this process: alive
  const auto other = dir / ".other.tmp.1.Q";                                       // another target's
  for (const auto& d : {stale, live, other}) {
    std::filesystem::create_directories(d);
    std::ofstream(d / "model.safetensors") << "partial";
  }
  CHECK(ordo::io::remove_stale_temporaries(dir / "out") == 1);
  CHECK_FALSE(std::filesystem::exists(stale));
  CHECK(std::filesystem::exists(live));
  CHECK(std::filesystem::exists(other));
  std::filesystem::create_directories(stale);
  const auto out = ordo::io::write_directory_atomically(
      dir / "out", [](const std::filesystem::path& tmp) { ordo::io::write_text(tmp / "a.txt", "a"); },
      [](const std::string&) { return true; });
  CHECK(std::filesystem::exists(out / "a.txt"));
  CHECK_FALSE(std::filesystem::exists(stale));  // the write removed it first
  CHECK(std::filesystem::exists(live));
}

TEST_CASE("safetensors: a sharded checkpoint through its index") {
  const st::Checkpoint c(fixture("safetensors/sharded"));
  CHECK(c.files().size() == 2);
  CHECK(c.names() == std::vector<std::string>{"embed.weight", "layer.0.weight", "layer.1.weight", "norm.weight"});
  const auto& norm = c.at("norm.weight");
  CHECK(norm.file->path().ends_with("model-00002-of-00002.safetensors"));
  std::vector<float> v(2);
  std::memcpy(v.data(), norm.data().data(), 8);
  CHECK(v == std::vector<float>{3.0f, 4.0f});
  CHECK_THROWS_WITH_AS(c.at("lm_head.weight"), doctest::Contains("tensor 'lm_head.weight': not in the checkpoint"),
                       format_error);

  const auto idx = st::read_index(fixture("safetensors/sharded/model.safetensors.index.json"));
  CHECK(idx.shard_files().size() == 2);
  CHECK(idx.metadata.at("total_size").get<int>() == 4 * (8 + 4 + 4 + 2));

  // a single file opens the same way
  const st::Checkpoint one(fixture("safetensors/dtypes.safetensors"));
  CHECK(one.names().size() == 12);
}

TEST_CASE("safetensors: an index that disagrees with its shards is refused") {
  ScratchDir dir;
  const std::vector<float> v = {1.0f};
  st::write(dir / "s1.safetensors", std::vector<st::TensorEntry>{{"a", st::Dtype::F32, {1}, as_bytes_of(v)},
                                                                 {"b", st::Dtype::F32, {1}, as_bytes_of(v)}});
  ordo_io_test::write_bytes(dir / "model.safetensors.index.json",
                            R"({"weight_map": {"a": "s1.safetensors", "c": "s1.safetensors"}})");
  CHECK_THROWS_WITH_AS(st::Checkpoint(dir.path()),
                       doctest::Contains("tensor 'c': the index names shard 's1.safetensors' but it is not there"),
                       format_error);
  ordo_io_test::write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"a": "s1.safetensors"}})");
  CHECK_THROWS_WITH_AS(st::Checkpoint(dir.path()), doctest::Contains("tensor 'b': is not in the index"), format_error);
  ordo_io_test::write_bytes(dir / "model.safetensors.index.json", R"({"weight_map": {"a": "s2.safetensors"}})");
  CHECK_THROWS_WITH_AS(st::Checkpoint(dir.path()), doctest::Contains("s2.safetensors: cannot open"), std::system_error);
}

TEST_CASE("safetensors: every truncation of a valid file is refused with a format_error") {
  const auto full = ordo_io_test::read_bytes(fixture("safetensors/dtypes.safetensors"));
  REQUIRE_NOTHROW(st::parse_header(full, "full"));
  std::size_t refused = 0;
  for (std::size_t n = 0; n < full.size(); ++n) {
    try {
      st::parse_header(std::span(full).first(n), "cut");
    } catch (const format_error& e) {
      ++refused;
      CHECK(std::string(e.what()).starts_with("cut: "));
    }
  }
  CHECK(refused == full.size());
}

TEST_CASE("safetensors: a flipped bit in the header gives a valid file or a format_error") {
  auto bytes = ordo_io_test::read_bytes(fixture("safetensors/dtypes.safetensors"));
  const std::size_t header_end = 8 + st::parse_header(bytes, "x").header_size;
  std::size_t accepted = 0, refused = 0;
  for (std::size_t i = 0; i < header_end; ++i) {
    for (int k = 0; k < 2; ++k) {
      auto copy = bytes;
      copy[i] ^= std::byte(1u << ((i + 5 * k) % 8));  // two different bits per byte
      try {
        const auto h = st::parse_header(copy, "flipped");
        ++accepted;
        // whatever was accepted still tiles the data section exactly
        std::uint64_t covered = 0;
        for (const auto& t : h.tensors) covered += t.nbytes();
        CHECK(covered == copy.size() - h.data_offset());
      } catch (const format_error&) {
        ++refused;
      }
    }
  }
  CHECK(accepted > 0);  // e.g. a changed letter in a metadata value
  CHECK(refused > 0);
}

TEST_CASE("mapped file: move keeps the mapping; a missing file names its path") {
  ordo::io::MappedFile a(fixture("safetensors/dtypes.safetensors"));
  const auto span = a.bytes();
  ordo::io::MappedFile b(std::move(a));
  CHECK(b.bytes().data() == span.data());
  CHECK(a.bytes().empty());
  CHECK_THROWS_WITH_AS(ordo::io::MappedFile("/nonexistent/ordo.safetensors"),
                       doctest::Contains("/nonexistent/ordo.safetensors: cannot open"), std::system_error);
  CHECK_THROWS_WITH_AS(ordo::io::MappedFile(fixture("safetensors")), doctest::Contains("not a regular file"),
                       std::system_error);
}
