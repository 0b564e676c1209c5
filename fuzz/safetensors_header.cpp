// libFuzzer target: ordo's safetensors header parser on arbitrary bytes. A bad file must end
// in ordo::io::format_error; anything else (crash, sanitizer report, other exception) is a bug.
#include <cstddef>
#include <cstdint>
#include <span>

#include <ordo/io/safetensors.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  try {
    const auto h = ordo::io::safetensors::parse_header(bytes, "fuzz");
    // what was accepted must tile the data section exactly
    std::uint64_t expected = 0;
    for (const auto& t : h.tensors) {
      if (t.begin != expected) __builtin_trap();
      expected = t.end;
    }
    if (expected != size - h.data_offset()) __builtin_trap();
  } catch (const ordo::io::format_error&) {
  }
  return 0;
}
