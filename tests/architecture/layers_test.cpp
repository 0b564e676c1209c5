// The layer rules (layers.hpp) on include/ordo/ as it is, and on small made-up trees that break
// each rule once, so that the check itself is known to catch what it must.
#include <doctest/doctest.h>

#include <filesystem>  // std::filesystem
#include <fstream>     // std::ifstream
#include <iterator>    // std::istreambuf_iterator
#include <map>         // std::map
#include <string>      // std::string

#include "layers.hpp"

namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  REQUIRE_MESSAGE(in, "cannot read " << p);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::map<std::string, std::string> tree() {
  std::map<std::string, std::string> headers;
  const fs::path root = fs::path(ORDO_SOURCE_DIR) / "include";
  for (const auto& e : fs::recursive_directory_iterator(root / "ordo"))
    if (e.is_regular_file() && e.path().extension() == ".hpp")
      headers[fs::relative(e.path(), root).generic_string()] = read(e.path());
  return headers;
}

std::vector<layers::Layer> order() {
  return layers::parse_order(read(fs::path(ORDO_SOURCE_DIR) / "docs/architecture.md"));
}

std::string listing(const std::vector<layers::Violation>& v) {
  std::string s;
  for (const auto& x : v) s += "  [" + x.rule + "] " + x.what + "\n";
  return s;
}

const std::vector<layers::Layer> toy_order = {{"pipeline", true}, {"io", true}, {"model", false}, {"stages", false}};

}  // namespace

TEST_CASE("include/ordo/ follows the layer order of docs/architecture.md") {
  const auto headers = tree();
  REQUIRE(headers.size() > 50);
  const auto v = layers::check(headers, order());
  CHECK_MESSAGE(v.empty(), "layer violations:\n" << listing(v));
}

TEST_CASE("every folder of include/ordo/ is in the order, and every layer has headers") {
  const auto o = order();
  std::set<std::string> folders;
  for (const auto& [path, _] : tree())
    if (path.find('/', 5) != std::string::npos) folders.insert(layers::folder_of(path));
  for (const auto& l : o) CHECK_MESSAGE(folders.contains(l.folder), "layer '" << l.folder << "' has no folder");
  CHECK(folders.size() == o.size());
}

TEST_CASE("the check catches an include that runs upward") {
  auto v = layers::check(
      {{"ordo/io/reader.hpp", "#include <ordo/stages/prune.hpp>\n"}, {"ordo/stages/prune.hpp", "#include <vector>\n"}},
      toy_order);
  REQUIRE(v.size() == 1);
  CHECK(v[0].rule == "upward");
  CHECK(v[0].what == "ordo/io/reader.hpp includes ordo/stages/prune.hpp (layer 'stages' is above 'io')");
  // the same include downward is fine
  CHECK(layers::check({{"ordo/stages/prune.hpp", "#include \"ordo/io/reader.hpp\"\n"}, {"ordo/io/reader.hpp", ""}},
                      toy_order)
            .empty());
}

TEST_CASE("the check catches a reach into another folder's detail/, and allows its own") {
  auto v = layers::check({{"ordo/model/a.hpp", "  #  include <ordo/io/detail/bytes.hpp>\n"},
                          {"ordo/io/detail/bytes.hpp", ""},
                          {"ordo/io/b.hpp", "#include <ordo/io/detail/bytes.hpp>\n"}},
                         toy_order);
  REQUIRE(v.size() == 1);
  CHECK(v[0].rule == "detail");
  CHECK(v[0].what.starts_with("ordo/model/a.hpp includes ordo/io/detail/bytes.hpp"));
}

TEST_CASE("the check catches LibTorch in a torch-free layer, directly or through another header") {
  auto v = layers::check({{"ordo/io/a.hpp", "#include <ATen/Tensor.h>\n"},
                          {"ordo/io/b.hpp", "#include <ordo/io/c.hpp>\n"},
                          {"ordo/io/c.hpp", "#include <c10/core/ScalarType.h>\n"},
                          {"ordo/model/d.hpp", "#include <torch/torch.h>\n"}},
                         toy_order);
  REQUIRE(v.size() == 3);
  for (const auto& x : v) CHECK(x.rule == "torch");
  CHECK(listing(v).find(
            "ordo/io/b.hpp reaches LibTorch in the torch-free layer 'io': ordo/io/c.hpp -> c10/core/ScalarType.h") !=
        std::string::npos);
}

TEST_CASE("the check catches cycles between folders and folders outside the order") {
  auto v = layers::check({{"ordo/io/a.hpp", "#include <ordo/model/b.hpp>\n"},
                          {"ordo/model/b.hpp", "#include <ordo/io/c.hpp>\n"},
                          {"ordo/io/c.hpp", ""},
                          {"ordo/extra/e.hpp", ""}},
                         toy_order);
  std::map<std::string, int> rules;
  for (const auto& x : v) ++rules[x.rule];
  CHECK(rules["upward"] == 1);
  CHECK(rules["cycle"] == 1);
  CHECK(rules["unknown layer"] == 1);
  CHECK(listing(v).find("folders include each other: io -> model -> io") != std::string::npos);
}

TEST_CASE("top-level headers: ordo/pipeline.hpp is the pipeline layer, ordo/ordo.hpp is above all") {
  CHECK(layers::check({{"ordo/pipeline.hpp", "#include <ordo/pipeline/a.hpp>\n"},
                       {"ordo/pipeline/a.hpp", ""},
                       {"ordo/ordo.hpp", "#include <ordo/stages/s.hpp>\n#include <ordo/pipeline.hpp>\n"},
                       {"ordo/stages/s.hpp", ""}},
                      toy_order)
            .empty());
  auto v = layers::check({{"ordo/pipeline.hpp", "#include <ordo/io/x.hpp>\n"}, {"ordo/io/x.hpp", ""}}, toy_order);
  REQUIRE(v.size() == 1);
  CHECK(v[0].rule == "upward");
}

TEST_CASE("the layer order must say what each layer may use") {
  CHECK_THROWS(layers::parse_order("no block here"));
  CHECK_THROWS(layers::parse_order("```layers\nio\n```\n"));
  CHECK_THROWS(layers::parse_order("```layers\nio torch-free\n"));
  const auto o = layers::parse_order("text\n```layers\n\nio    torch-free\nmodel torch\n```\n");
  REQUIRE(o.size() == 2);
  CHECK(o[0].folder == "io");
  CHECK(o[0].torch_free);
  CHECK(!o[1].torch_free);
}
