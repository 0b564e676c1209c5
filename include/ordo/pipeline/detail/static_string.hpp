// ordo/pipeline/detail/static_string.hpp — joining string_views at compile time, for names
// like "P-KD-Q" that live in static storage and cost nothing at run time.
#pragma once

#include <array>        // std::array
#include <cstddef>      // std::size_t
#include <string_view>  // std::string_view

namespace ordo::detail {

// joined<Sep, Parts...>::value: the Parts joined by Sep, each Part a type with a static
// constexpr std::string_view `value`.
template <class Sep, class... Parts>
struct joined {
 private:
  static constexpr std::size_t length = [] {
    std::size_t n = (std::size_t{0} + ... + Parts::value.size());
    if constexpr (sizeof...(Parts) > 1) n += (sizeof...(Parts) - 1) * Sep::value.size();
    return n;
  }();
  static constexpr std::array<char, length + 1> storage = [] {
    std::array<char, length + 1> out{};
    std::size_t at = 0;
    bool first = true;
    auto put = [&](std::string_view s) {
      for (char c : s) out[at++] = c;
    };
    ((put(first ? std::string_view{} : Sep::value), put(Parts::value), first = false), ...);
    out[length] = '\0';
    return out;
  }();

 public:
  static constexpr std::string_view value{storage.data(), length};
};

struct dash {
  static constexpr std::string_view value = "-";
};

}  // namespace ordo::detail
