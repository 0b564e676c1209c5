// ordo/text/utf8.hpp — UTF-8 helpers and the byte-level alphabet of byte-level BPE.
//
// Byte-level BPE (GPT-2 and its descendants: SmolLM2, Llama 3, Qwen2) spells every byte of the
// input as one printable Unicode character, so that a vocabulary of strings covers all byte
// sequences. The table below is that alphabet: printable Latin-1 bytes stand for themselves,
// the other 68 bytes are moved to U+0100..U+0143 in byte order.
#pragma once

#include <array>        // std::array
#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint8_t, std::uint32_t
#include <optional>     // std::optional
#include <string>       // std::string
#include <string_view>  // std::string_view

namespace ordo::detail::utf8 {

/// Appends the UTF-8 encoding of code point `cp` (assumed valid) to `out`.
inline void append(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

/// Length of the well-formed UTF-8 sequence starting at `s[i]`, or 0 when the bytes there are
/// not one. `*valid_prefix` receives how many bytes form the longest prefix that could still
/// begin a well-formed sequence (the "maximal subpart" of Unicode's recommended practice, at
/// least 1), which is what a lossy decoder replaces with one U+FFFD.
inline std::size_t sequence_length(std::string_view s, std::size_t i, std::size_t* valid_prefix = nullptr) {
  const auto b0 = static_cast<std::uint8_t>(s[i]);
  std::size_t need = 0;
  std::uint8_t lo = 0x80, hi = 0xBF;  // range of the second byte
  if (b0 < 0x80) {
    if (valid_prefix) *valid_prefix = 1;
    return 1;
  } else if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;  // no overlong forms
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;  // no overlong forms
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    if (valid_prefix) *valid_prefix = 1;
    return 0;
  }
  std::size_t got = 1;
  for (; got < need && i + got < s.size(); ++got) {
    const auto b = static_cast<std::uint8_t>(s[i + got]);
    const bool ok = got == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xBF);
    if (!ok) break;
  }
  if (valid_prefix) *valid_prefix = got;
  return got == need ? need : 0;
}

/// Offset of the first byte that does not belong to well-formed UTF-8, or nullopt.
inline std::optional<std::size_t> first_invalid(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = sequence_length(s, i);
    if (n == 0) return i;
    i += n;
  }
  return std::nullopt;
}

/// Bytes to UTF-8 text, each maximal ill-formed subpart replaced by U+FFFD (the same result as
/// Rust's String::from_utf8_lossy and Python's bytes.decode("utf-8", "replace")).
inline std::string to_valid_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    std::size_t prefix = 1;
    const std::size_t n = sequence_length(s, i, &prefix);
    if (n != 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i += prefix;
    }
  }
  return out;
}

/// Decodes the code point at `s[i]` of well-formed UTF-8 and advances `i`.
inline std::uint32_t next(std::string_view s, std::size_t& i) {
  const auto b0 = static_cast<std::uint8_t>(s[i]);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  const std::size_t n = b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : 2;
  std::uint32_t cp = b0 & (0x7F >> n);
  for (std::size_t k = 1; k < n && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<std::uint8_t>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

/// Number of bytes a well-formed sequence with lead byte `b0` has; 1 for anything else.
inline std::size_t lead_length(unsigned char b0) { return b0 >= 0xF0 ? 4 : b0 >= 0xE0 ? 3 : b0 >= 0xC0 ? 2 : 1; }

}  // namespace ordo::detail::utf8

namespace ordo::detail::byte_level {

/// The code point that stands for byte `b` in byte-level BPE vocabularies.
constexpr std::uint32_t code_point_of(std::uint8_t b) {
  const auto printable = [](unsigned v) {
    return (v >= '!' && v <= '~') || (v >= 0xA1 && v <= 0xAC) || (v >= 0xAE && v <= 0xFF);
  };
  if (printable(b)) return b;
  std::uint32_t shifted = 0;  // rank of b among the non-printable bytes
  for (unsigned v = 0; v < b; ++v)
    if (!printable(v)) ++shifted;
  return 0x100 + shifted;
}

/// code_point_of for every byte, as UTF-8 strings.
inline const std::array<std::string, 256>& alphabet() {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    for (unsigned b = 0; b < 256; ++b) utf8::append(t[b], code_point_of(static_cast<std::uint8_t>(b)));
    return t;
  }();
  return table;
}

/// The byte a code point stands for, or -1 when it is not in the alphabet.
inline int byte_of(std::uint32_t cp) {
  static const std::array<short, 0x144> inverse = [] {
    std::array<short, 0x144> t{};
    t.fill(-1);
    for (unsigned b = 0; b < 256; ++b) t[code_point_of(static_cast<std::uint8_t>(b))] = static_cast<short>(b);
    return t;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

/// Raw bytes spelled in the byte-level alphabet.
inline std::string encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const char c : bytes) out += alphabet()[static_cast<std::uint8_t>(c)];
  return out;
}

/// The bytes a vocabulary string stands for. As Hugging Face's ByteLevel decoder does, a token
/// with a character outside the alphabet (an added token such as "<|im_start|> x") stands for
/// its own UTF-8 bytes. `token` must be well-formed UTF-8.
inline std::string decode(std::string_view token) {
  std::string out;
  out.reserve(token.size());
  for (std::size_t i = 0; i < token.size();) {
    const int b = byte_of(utf8::next(token, i));
    if (b < 0) return std::string(token);
    out.push_back(static_cast<char>(b));
  }
  return out;
}

}  // namespace ordo::detail::byte_level
