// GGUF -> CausalLM on tiny models written by the test: the weights arrive as transformers
// has them (llama.cpp's q/k row permutation undone), per-layer FFN widths load, and corrupt
// metadata (counts beyond the bounds, non-dividing head counts, shapes that contradict the
// tensors, ids outside the vocabulary ...) is refused before anything is sized from it, with an
// error naming the file and the metadata key or tensor.
#include "../torch_doctest.hpp"  // first: LibTorch, then doctest's CHECK macros

#include <unistd.h>  // getpid

#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include <ordo/io/gguf_writer.hpp>
#include <ordo/model/load_gguf.hpp>

#include "../test_support.hpp"

namespace fs = std::filesystem;

namespace {

// A GGUF file of F32 tensors (ordo::io::gguf::Writer), whose keys and tensors a test may
// replace or remove to make it corrupt.
struct gguf_writer {
  ordo::io::gguf::Writer w;

  void u32(const std::string& key, std::uint32_t v) { w.set_u32(key, v); }
  void i32(const std::string& key, std::int32_t v) { w.set_i32(key, v); }
  void u64(const std::string& key, std::uint64_t v) { w.set_u64(key, v); }
  void f32(const std::string& key, float v) { w.set_f32(key, v); }
  void str(const std::string& key, const std::string& v) { w.set_string(key, v); }
  void u32_array(const std::string& key, const std::vector<std::uint32_t>& v) { w.set_u32_array(key, v); }
  void erase(const std::string& key) { w.erase(key); }
  void erase_tensor(const std::string& name) { w.erase_tensor(name); }
  void tensor(const std::string& name, const torch::Tensor& t) {  // replaces one of the same name
    w.erase_tensor(name);
    const auto c = t.to(torch::kFloat32).contiguous();
    std::vector<std::uint64_t> shape(c.sizes().begin(), c.sizes().end());
    w.add_tensor(name, ordo::io::gguf::TensorType::F32, shape,
                 [c] { return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel()); });
  }
  void write(const fs::path& path) const { w.write(path); }
};

// llama.cpp's converter: q/k rows of each head go from (2, pairs) to (pairs, 2).
torch::Tensor permute_rope_rows(const torch::Tensor& w, std::int64_t heads) {
  return w.reshape({heads, 2, w.size(0) / heads / 2, w.size(1)}).transpose(1, 2).reshape(w.sizes());
}

// A two-layer llama in GGUF form, with the transformers weights it stands for.
struct tiny_llama {
  static constexpr std::int64_t vocab = 16, hidden = 8, heads = 2, kv_heads = 1, head_dim = 4;
  std::vector<std::int64_t> ffn{12, 12};
  std::vector<std::pair<std::string, torch::Tensor>> hf;  // transformers' name, weight
  gguf_writer g;

  explicit tiny_llama(std::vector<std::int64_t> widths = {12, 12}) : ffn(std::move(widths)) {
    torch::manual_seed(3);
    g.str("general.architecture", "llama");
    g.u32("llama.block_count", static_cast<std::uint32_t>(ffn.size()));
    g.u32("llama.embedding_length", hidden);
    g.u32("llama.attention.head_count", heads);
    g.u32("llama.attention.head_count_kv", kv_heads);
    g.u32("llama.rope.dimension_count", head_dim);
    g.u32("llama.context_length", 64);
    g.f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    g.f32("llama.rope.freq_base", 10000.0f);
    g.u32("tokenizer.ggml.bos_token_id", 1);
    g.u32("tokenizer.ggml.eos_token_id", 2);
    bool uniform = true;
    for (auto w : ffn) uniform = uniform && w == ffn[0];
    if (uniform) {
      g.u32("llama.feed_forward_length", static_cast<std::uint32_t>(ffn[0]));
    } else {
      std::vector<std::uint32_t> w(ffn.begin(), ffn.end());
      g.u32_array("llama.feed_forward_length", w);
    }
    add("token_embd.weight", "model.embed_tokens.weight", torch::randn({vocab, hidden}));
    add("output_norm.weight", "model.norm.weight", 1 + 0.1 * torch::randn({hidden}));
    for (std::size_t i = 0; i < ffn.size(); ++i) {
      const std::string b = "blk." + std::to_string(i) + ".", m = "model.layers." + std::to_string(i) + ".";
      add(b + "attn_norm.weight", m + "input_layernorm.weight", 1 + 0.1 * torch::randn({hidden}));
      add(b + "ffn_norm.weight", m + "post_attention_layernorm.weight", 1 + 0.1 * torch::randn({hidden}));
      auto q = torch::randn({heads * head_dim, hidden}), k = torch::randn({kv_heads * head_dim, hidden});
      hf.emplace_back(m + "self_attn.q_proj.weight", q);
      hf.emplace_back(m + "self_attn.k_proj.weight", k);
      g.tensor(b + "attn_q.weight", permute_rope_rows(q, heads));
      g.tensor(b + "attn_k.weight", permute_rope_rows(k, kv_heads));
      add(b + "attn_v.weight", m + "self_attn.v_proj.weight", torch::randn({kv_heads * head_dim, hidden}));
      add(b + "attn_output.weight", m + "self_attn.o_proj.weight", torch::randn({hidden, heads * head_dim}));
      add(b + "ffn_gate.weight", m + "mlp.gate_proj.weight", torch::randn({ffn[i], hidden}));
      add(b + "ffn_up.weight", m + "mlp.up_proj.weight", torch::randn({ffn[i], hidden}));
      add(b + "ffn_down.weight", m + "mlp.down_proj.weight", torch::randn({hidden, ffn[i]}));
    }
  }
  void add(const std::string& gguf_name, const std::string& hf_name, const torch::Tensor& t) {
    g.tensor(gguf_name, t);
    hf.emplace_back(hf_name, t);
  }
};

struct temp_dir {
  fs::path path = fs::temp_directory_path() / ("ordo_test_load_gguf_" + std::to_string(::getpid()));
  temp_dir() { fs::create_directories(path); }
  ~temp_dir() { fs::remove_all(path); }
};

// The error loading `g` gives (the config alone, then the whole model), or "(no error)".
std::string load_error(const gguf_writer& g, const fs::path& path) {
  g.write(path);
  return error_of([&] {
    ordo::io::gguf::File file(path);
    (void)ordo::model::gguf_config(file);
    (void)ordo::model::load_gguf(path);
  });
}

}  // namespace

TEST_CASE("a tiny GGUF llama loads with transformers' weights") {
  temp_dir dir;
  for (const auto& widths : {std::vector<std::int64_t>{12, 12}, std::vector<std::int64_t>{12, 8}}) {
    tiny_llama m(widths);
    const auto path = dir.path / "tiny.gguf";
    m.g.write(path);
    auto lm = ordo::model::load_gguf(path);
    const auto& c = lm->config();
    CHECK(c.num_layers == 2);
    CHECK(c.hidden_size == tiny_llama::hidden);
    CHECK(c.num_heads == tiny_llama::heads);
    CHECK(c.num_kv_heads == tiny_llama::kv_heads);
    CHECK(c.head_dim == tiny_llama::head_dim);
    CHECK(c.vocab_size == tiny_llama::vocab);
    CHECK(c.intermediate_sizes == widths);
    CHECK(c.max_position_embeddings == 64);
    CHECK(c.rms_norm_eps == doctest::Approx(1e-5));
    CHECK(c.tie_word_embeddings);
    CHECK_FALSE(c.attention_bias);
    CHECK(c.bos_token_id == 1);
    CHECK(c.eos_token_id == 2);
    auto params = lm->named_parameters();
    CHECK(params.size() == m.hf.size());
    for (const auto& [name, w] : m.hf) {
      CAPTURE(name);
      REQUIRE(params.find(name) != nullptr);
      CHECK(torch::equal(params[name], w));
    }
    torch::NoGradGuard no_grad;
    auto logits = lm->forward(torch::tensor({{1, 5, 7, 3}}, torch::kLong));
    CHECK(logits.sizes() == torch::IntArrayRef({1, 4, tiny_llama::vocab}));
    CHECK(torch::isfinite(logits).all().item<bool>());
  }
}

TEST_CASE("a non-finite weight in a GGUF is refused, naming the file and the tensor") {
  temp_dir dir;
  const auto path = dir.path / "nan.gguf";
  tiny_llama m({12, 12});
  auto w = torch::randn({12, tiny_llama::hidden});
  w[3][5] = std::numeric_limits<float>::quiet_NaN();
  m.g.tensor("blk.1.ffn_up.weight", w);
  const auto msg = load_error(m.g, path);
  CHECK(msg.find(path.string() + ": tensor 'blk.1.ffn_up.weight' holds a non-finite value (NaN or Inf) at element " +
                 std::to_string(3 * tiny_llama::hidden + 5) + ": the file is corrupt") != std::string::npos);
}

TEST_CASE("corrupt GGUF metadata is refused, naming the file and the key") {
  temp_dir dir;
  const auto path = dir.path / "corrupt.gguf";
  const std::string file = path.string();
  struct corruption {
    std::string what;
    std::function<void(gguf_writer&)> apply;
    std::vector<std::string> message;  // all must appear in the error
  };
  const std::vector<corruption> cases{
      {"block count beyond the bound",
       [](gguf_writer& g) { g.u32("llama.block_count", 4097); },
       {"'llama.block_count' (4097)", "[1, 4096]"}},
      {"block count near 2^64",
       [](gguf_writer& g) { g.u64("llama.block_count", std::uint64_t{1} << 62); },
       {"'llama.block_count'", "[1, 4096]"}},
      {"no blocks", [](gguf_writer& g) { g.u32("llama.block_count", 0); }, {"'llama.block_count' (0)"}},
      {"negative block count",
       [](gguf_writer& g) { g.i32("llama.block_count", -2); },
       {"llama.block_count", "negative"}},
      {"block count as a string",
       [](gguf_writer& g) { g.str("llama.block_count", "2"); },
       {"llama.block_count", "not an integer"}},
      {"block count missing",
       [](gguf_writer& g) { g.erase("llama.block_count"); },
       {"llama.block_count", "not in the metadata"}},
      {"more blocks than tensors",
       [](gguf_writer& g) { g.u32("llama.block_count", 3); },
       {"'blk.2.attn_q.weight'", "'llama.block_count' is 3"}},
      {"embedding length beyond 2^24",
       [](gguf_writer& g) { g.u64("llama.embedding_length", std::uint64_t{1} << 25); },
       {"'llama.embedding_length' (33554432)"}},
      {"embedding length against the tensors",
       [](gguf_writer& g) {
         g.u32("llama.embedding_length", 16);
         g.u32("llama.rope.dimension_count", 8);
       },
       {"'token_embd.weight'", "[16, 8]", "[16, 16]", "'llama.embedding_length'"}},
      {"zero heads",
       [](gguf_writer& g) { g.u32("llama.attention.head_count", 0); },
       {"'llama.attention.head_count' (0)"}},
      {"head count not a multiple of the kv heads",
       [](gguf_writer& g) {
         g.u32("llama.attention.head_count", 2);
         g.u32("llama.attention.head_count_kv", 3);
       },
       {"'llama.attention.head_count' (2)", "multiple of 'llama.attention.head_count_kv' (3)"}},
      {"embedding length not a multiple of the heads",
       [](gguf_writer& g) {
         g.u32("llama.attention.head_count", 3);
         g.u32("llama.attention.head_count_kv", 1);
       },
       {"'llama.embedding_length' (8)", "'llama.attention.head_count' (3)"}},
      {"odd head width",
       [](gguf_writer& g) {
         g.u32("llama.attention.key_length", 3);
         g.u32("llama.rope.dimension_count", 3);
       },
       {"head width 3", "'llama.attention.key_length'", "even"}},
      {"partial rotary",
       [](gguf_writer& g) { g.u32("llama.rope.dimension_count", 2); },
       {"'llama.rope.dimension_count' (2)", "partial rotary"}},
      {"heads x width beyond 2^24",
       [](gguf_writer& g) {
         g.u32("llama.attention.head_count", 1 << 13);
         g.u32("llama.attention.head_count_kv", 1);
         g.u32("llama.attention.key_length", 1 << 12);
         g.erase("llama.rope.dimension_count");
       },
       {"'llama.attention.head_count' times the head width (33554432)"}},
      {"key width against the q tensor",
       [](gguf_writer& g) {
         g.u32("llama.attention.key_length", 8);
         g.u32("llama.rope.dimension_count", 8);
       },
       {"'blk.0.attn_q.weight'", "[8, 8]", "[16, 8]", "'llama.attention.head_count' x the head width"}},
      {"FFN width beyond 2^24",
       [](gguf_writer& g) { g.u64("llama.feed_forward_length", std::uint64_t{1} << 40); },
       {"'llama.feed_forward_length' (1099511627776)"}},
      {"FFN width against the gate tensor",
       [](gguf_writer& g) { g.u32("llama.feed_forward_length", 10); },
       {"'blk.0.ffn_gate.weight'", "[12, 8]", "[10, 8]", "'llama.feed_forward_length'"}},
      {"FFN widths for the wrong number of blocks",
       [](gguf_writer& g) {
         g.u32_array("llama.feed_forward_length", {12, 12, 12});
       },
       {"'llama.feed_forward_length' lists 3 widths", "'llama.block_count' is 2"}},
      {"a zero FFN width in the list",
       [](gguf_writer& g) {
         g.u32_array("llama.feed_forward_length", {12, 0});
       },
       {"'llama.feed_forward_length[1]' (0)"}},
      {"negative RMS epsilon",
       [](gguf_writer& g) { g.f32("llama.attention.layer_norm_rms_epsilon", -1e-5f); },
       {"'llama.attention.layer_norm_rms_epsilon'", "positive and finite"}},
      {"NaN RoPE base",
       [](gguf_writer& g) { g.f32("llama.rope.freq_base", std::numeric_limits<float>::quiet_NaN()); },
       {"'llama.rope.freq_base'", "positive and finite"}},
      {"zero context", [](gguf_writer& g) { g.u32("llama.context_length", 0); }, {"'llama.context_length' (0)"}},
      {"eos outside the vocabulary",
       [](gguf_writer& g) { g.u32("tokenizer.ggml.eos_token_id", 16); },
       {"'tokenizer.ggml.eos_token_id' (16)", "vocabulary of 16"}},
      {"an embedding that is not a matrix",
       [](gguf_writer& g) { g.tensor("token_embd.weight", torch::zeros({16 * 8})); },
       {"'token_embd.weight' has 1 dimensions"}},
      {"a missing k tensor",
       [](gguf_writer& g) { g.erase_tensor("blk.1.attn_k.weight"); },
       {"'blk.1.attn_k.weight'", "not in the file"}},
  };
  for (const auto& c : cases) {
    CAPTURE(c.what);
    tiny_llama m;
    c.apply(m.g);
    const std::string err = load_error(m.g, path);
    CAPTURE(err);
    CHECK(err.find(file) != std::string::npos);
    for (const auto& part : c.message) {
      CAPTURE(part);
      CHECK(err.find(part) != std::string::npos);
    }
  }
  // the unmodified model loads (the cases above fail for their corruption alone)
  CHECK(load_error(tiny_llama().g, path) == "(no error)");
}

TEST_CASE("RoPE scaling in GGUF: Llama 3's rope_freqs.weight and linear metadata become the config's scaling") {
  temp_dir dir;
  const auto path = dir.path / "rope.gguf";
  {  // Llama 3's divisors, as llama.cpp's converter stores them: [1, 8] for these two frequencies.
    tiny_llama m;
    m.g.f32("llama.rope.freq_base", 5e6f);  // the second wavelength (14050) beyond 8192 positions
    m.g.tensor("rope_freqs.weight", torch::tensor({1.0f, 8.0f}));
    m.g.write(path);
    auto lm = ordo::model::load_gguf(path);
    const auto& r = lm->config().rope;
    CHECK(r.type == "llama3");
    CHECK(r.factor == 8.0);
    CHECK(lm->config().to_json()["rope_scaling"]["rope_type"] == "llama3");  // save_hf keeps it
    CHECK(ordo::model::detail::rope_frequency_factors(lm->config()) == std::vector<float>{1.0f, 8.0f});
  }
  {  // Linear scaling.
    tiny_llama m;
    m.g.str("llama.rope.scaling.type", "linear");
    m.g.f32("llama.rope.scaling.factor", 4.0f);
    m.g.write(path);
    auto lm = ordo::model::load_gguf(path);
    CHECK(lm->config().rope.type == "linear");
    CHECK(lm->config().rope.factor == 4.0);
  }
  {  // What ordo does not read is refused, naming the key or tensor.
    tiny_llama m;
    m.g.str("llama.rope.scaling.type", "yarn");
    CHECK(load_error(m.g, path).find("'llama.rope.scaling.type' is 'yarn': only linear RoPE scaling is read") !=
          std::string::npos);
    tiny_llama n;
    n.g.tensor("rope_freqs.weight", torch::tensor({1.0f, 3.7f}));
    CHECK(load_error(n.g, path).find("'rope_freqs.weight' matches no Llama 3 RoPE scaling") != std::string::npos);
    tiny_llama o;
    o.g.tensor("rope_freqs.weight", torch::tensor({1.0f, 8.0f, 8.0f}));
    CHECK(load_error(o.g, path).find("'rope_freqs.weight' has 3 values, not head width / 2 = 2") != std::string::npos);
  }
  // The published settings come back from their divisors (head width 64 and 128, theta 500000).
  for (const double factor : {8.0, 32.0}) {
    ordo::model::decoder_config c;
    c.head_dim = 128;
    c.rope_theta = 500000;
    c.rope.type = "llama3";
    c.rope.factor = factor;
    c.rope.low_freq_factor = 1;
    c.rope.high_freq_factor = 4;
    c.rope.original_max_position_embeddings = 8192;
    const auto stored = ordo::model::detail::rope_frequency_factors(c);
    const auto back = ordo::model::detail::rope_scaling_from_factors(c, stored);
    REQUIRE(back);
    CHECK(back->type == "llama3");
    CHECK(back->factor == factor);
    CHECK(back->original_max_position_embeddings == 8192);
    CHECK(ordo::model::detail::rope_frequency_factors([&] {
            auto t = c;
            t.rope = *back;
            return t;
          }()) == stored);
  }
}
