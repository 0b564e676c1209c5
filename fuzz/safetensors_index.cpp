// libFuzzer target: ordo's model.safetensors.index.json parser on arbitrary text.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <ordo/io/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto idx = ordo::io::safetensors::parse_index(std::string_view(reinterpret_cast<const char*>(data), size),
                                                        "fuzz.index.json");
    for (const auto& f : idx.shard_files())
      if (f.empty() || f.find('/') != std::string::npos) __builtin_trap();
  } catch (const ordo::io::format_error&) {
  }
  return 0;
}
