// libFuzzer target: ordo's config.json reader (ordo/model/config.hpp) on arbitrary text.
// Torch-free (nlohmann-json only). Built by fuzz/build.sh; run e.g.
//
//   build-fuzz/config_fuzz -max_total_time=600 -dict=fuzz/config.dict \
//       build-fuzz/corpus/config build-fuzz/seeds/config
//
// What must hold for every input:
//   - decoder_config::parse accepts it or throws std::invalid_argument whose message starts with
//     the file's name (any other exception, a crash or a sanitizer report is a finding);
//   - an accepted config passes validate(), and its to_json() reads back to the same shape.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include <ordo/model/config.hpp>

namespace {

bool same_shape(const ordo::model::decoder_config& a, const ordo::model::decoder_config& b) {
  return a.model_type == b.model_type && a.vocab_size == b.vocab_size && a.hidden_size == b.hidden_size &&
         a.num_layers == b.num_layers && a.num_heads == b.num_heads && a.num_kv_heads == b.num_kv_heads &&
         a.head_dim == b.head_dim && a.intermediate_sizes == b.intermediate_sizes && a.rms_norm_eps == b.rms_norm_eps &&
         a.rope_theta == b.rope_theta && a.rope.type == b.rope.type && a.rope.factor == b.rope.factor &&
         a.rope.low_freq_factor == b.rope.low_freq_factor && a.rope.high_freq_factor == b.rope.high_freq_factor &&
         a.rope.original_max_position_embeddings == b.rope.original_max_position_embeddings &&
         a.attention_bias == b.attention_bias && a.tie_word_embeddings == b.tie_word_embeddings &&
         a.max_position_embeddings == b.max_position_embeddings && a.bos_token_id == b.bos_token_id &&
         a.eos_token_id == b.eos_token_id;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::string source = "fuzz/config.json";
  ordo::model::decoder_config c;
  try {
    c = ordo::model::decoder_config::parse(text, source);
  } catch (const std::invalid_argument& e) {
    if (!std::string_view(e.what()).starts_with(source + ": ")) __builtin_trap();
    return 0;
  }
  c.validate(source);  // must not throw for an accepted config
  const auto again = ordo::model::decoder_config::from_json(c.to_json(), "round trip");
  if (!same_shape(c, again)) __builtin_trap();
  return 0;
}
