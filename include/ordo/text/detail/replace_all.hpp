// ordo/text/detail/replace_all.hpp — replaces every occurrence of a literal in a string, as the
// tokenizer's normalizers, Metaspace pre-tokenizer and decoders do.
#pragma once

#include <string>       // std::string
#include <string_view>  // std::string_view

namespace ordo::detail {

/// Replaces every occurrence of `from` in `s` by `to`, left to right (a replacement is not
/// searched again); nothing when `from` is empty.
inline void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
    s.replace(at, from.size(), to);
}

}  // namespace ordo::detail
