// libFuzzer target: ordo's GGUF parser on arbitrary bytes, then everything a model loader
// does with an accepted file: read every metadata value and array element, the tokenizer
// metadata, and dequantize every (small) tensor. A bad file must end in ordo::io::format_error.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <ordo/io/gguf.hpp>

namespace gg = ordo::io::gguf;

static void touch(const gg::Value& v) {
  switch (v.type()) {
    case gg::ValueType::STRING:
      (void)v.as_string();
      break;
    case gg::ValueType::BOOL:
      (void)v.as_bool();
      break;
    case gg::ValueType::FLOAT32:
    case gg::ValueType::FLOAT64:
      (void)v.as_double();
      break;
    case gg::ValueType::ARRAY:
      if (v.element_type() == gg::ValueType::STRING) {
        if (v.strings().size() != v.size()) __builtin_trap();
      } else if (v.size() <= 4096) {
        for (const gg::Value& e : v.elements()) touch(e);
      }
      break;
    default:
      (void)v.as_double();
      break;
  }
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const gg::Header h = gg::parse(bytes, "fuzz.gguf");
    for (const gg::Value& v : h.metadata) touch(v);
    if (h.find("tokenizer.ggml.tokens") != nullptr) {
      try {
        const gg::TokenizerMetadata tk = gg::tokenizer_metadata(h, "fuzz.gguf");
        if (tk.bos_id && *tk.bos_id >= tk.tokens.size()) __builtin_trap();
      } catch (const ordo::io::format_error&) {
      }
    }
    for (const gg::TensorInfo& t : h.tensors) {
      if (h.data_offset + t.offset + t.nbytes > size) __builtin_trap();
      if (!gg::can_dequantize(t.type) || t.numel > (1u << 16)) continue;
      std::vector<float> out(t.numel);
      gg::dequantize(t.type, bytes.subspan(h.data_offset + t.offset, t.nbytes), out);
    }
  } catch (const ordo::io::format_error&) {
  }
  return 0;
}
