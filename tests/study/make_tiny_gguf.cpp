// make_tiny_gguf SOURCE.gguf OUT.gguf [SEED]: a Llama model of random weights (hidden 64, 2
// layers, 4 query and 2 key/value heads of 16, FFN 128) with the tokenizer and chat template of
// SOURCE, written as F32 GGUF. A whole study runs on it in seconds, with the real tokenizer and
// data the default model's study uses (tests/study/resume_test.sh). Torch-free.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <random>
#include <string>
#include <vector>

#include <ordo/io/gguf.hpp>
#include <ordo/io/gguf_writer.hpp>

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::fprintf(stderr, "usage: make_tiny_gguf SOURCE.gguf OUT.gguf [SEED]\n");
    return 2;
  }
  try {
    namespace gguf = ordo::io::gguf;
    const gguf::File source(argv[1]);
    const std::uint64_t seed = argc == 4 ? std::stoull(argv[3]) : 1;
    const std::uint64_t vocab = source.tokenizer().tokens.size();
    const std::uint64_t hidden = 64, layers = 2, heads = 4, kv_heads = 2, head_dim = 16, ffn = 128;

    gguf::Writer w;
    w.set_string("general.architecture", "llama");
    w.set_string("general.name", "tiny-random");
    w.set_u32("general.file_type", 0);  // all F32
    w.set_u32("llama.context_length", 2048);
    w.set_u32("llama.embedding_length", hidden);
    w.set_u32("llama.block_count", layers);
    w.set_u32("llama.feed_forward_length", ffn);
    w.set_u32("llama.attention.head_count", heads);
    w.set_u32("llama.attention.head_count_kv", kv_heads);
    w.set_u32("llama.rope.dimension_count", head_dim);
    w.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    w.set_f32("llama.rope.freq_base", 10000.0f);
    w.set_u32("llama.vocab_size", static_cast<std::uint32_t>(vocab));
    gguf::copy_tokenizer(source, w);

    // Each tensor's values from its own generator, so the file does not depend on write order.
    std::uint64_t stream = 0;
    auto normal = [&](std::vector<std::uint64_t> shape, double std) {
      const std::uint64_t n = shape[0] * (shape.size() > 1 ? shape[1] : 1);
      const std::uint64_t s = seed * 1000003ull + ++stream;
      return [n, s, std] {
        std::mt19937_64 g(s);
        std::normal_distribution<float> d(0.0f, static_cast<float>(std));
        std::vector<float> v(n);
        for (auto& x : v) x = d(g);
        return v;
      };
    };
    auto ones = [](std::uint64_t n) { return [n] { return std::vector<float>(n, 1.0f); }; };
    const double init = 0.02, out_init = 0.02 / std::sqrt(2.0 * static_cast<double>(layers));
    using T = gguf::TensorType;
    w.add_tensor("token_embd.weight", T::F32, {vocab, hidden}, normal({vocab, hidden}, init));
    w.add_tensor("output_norm.weight", T::F32, {hidden}, ones(hidden));
    for (std::uint64_t l = 0; l < layers; ++l) {
      const std::string b = "blk." + std::to_string(l) + ".";
      w.add_tensor(b + "attn_norm.weight", T::F32, {hidden}, ones(hidden));
      w.add_tensor(b + "attn_q.weight", T::F32, {heads * head_dim, hidden}, normal({heads * head_dim, hidden}, init));
      w.add_tensor(b + "attn_k.weight", T::F32, {kv_heads * head_dim, hidden},
                   normal({kv_heads * head_dim, hidden}, init));
      w.add_tensor(b + "attn_v.weight", T::F32, {kv_heads * head_dim, hidden},
                   normal({kv_heads * head_dim, hidden}, init));
      w.add_tensor(b + "attn_output.weight", T::F32, {hidden, heads * head_dim},
                   normal({hidden, heads * head_dim}, out_init));
      w.add_tensor(b + "ffn_norm.weight", T::F32, {hidden}, ones(hidden));
      w.add_tensor(b + "ffn_gate.weight", T::F32, {ffn, hidden}, normal({ffn, hidden}, init));
      w.add_tensor(b + "ffn_up.weight", T::F32, {ffn, hidden}, normal({ffn, hidden}, init));
      w.add_tensor(b + "ffn_down.weight", T::F32, {hidden, ffn}, normal({hidden, ffn}, out_init));
    }
    w.write(argv[2]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_tiny_gguf: %s\n", e.what());
    return 1;
  }
}
