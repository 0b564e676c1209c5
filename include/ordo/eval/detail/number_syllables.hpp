// ordo/eval/detail/number_syllables.hpp — syllables of a number spoken in English: cardinals,
// years ("nineteen oh five"), ordinals, fractions ("point one four"), digit strings.
#pragma once

#include <array>        // std::array
#include <cstddef>      // std::size_t
#include <cstdint>      // std::uint64_t
#include <string_view>  // std::string_view

namespace ordo::eval::detail::readability {

// Syllables of a number spoken in English.
inline constexpr std::array<unsigned char, 20> small_number{2, 1, 1, 1, 1, 1, 1, 2, 1, 1,   // zero..nine
                                                            1, 3, 1, 2, 2, 2, 2, 3, 2, 2};  // ten..nineteen
inline std::size_t below_hundred(std::uint64_t n) {
  if (n < 20) return small_number[n];
  const std::size_t tens = n / 10 == 7 ? 3 : 2;  // twenty, ..., seventy (3), ...
  return tens + (n % 10 ? small_number[n % 10] : 0);
}
inline std::size_t cardinal(std::uint64_t n) {
  if (n == 0) return 2;
  std::size_t s = 0;
  const auto below_thousand = [](std::uint64_t m) {
    std::size_t t = 0;
    if (m >= 100) t += small_number[m / 100] + 2;  // "... hundred"
    if (m % 100) t += below_hundred(m % 100);
    return t;
  };
  for (std::uint64_t scale = 1'000'000'000'000ULL; scale >= 1000; scale /= 1000) {
    if (n >= scale) {
      s += below_thousand(n / scale) + 2;  // thousand, million, billion, trillion
      n %= scale;
    }
  }
  return s + (n ? below_thousand(n) : 0);
}
// A digit string (and optional fraction digits); `grouped` when written with thousands commas.
inline std::size_t number_syllables(std::string_view digits, std::string_view fraction, bool grouped,
                                    std::string_view ordinal_suffix) {
  const auto digit_by_digit = [](std::string_view d) {
    std::size_t s = 0;
    for (const char c : d) s += small_number[static_cast<std::size_t>(c - '0')];
    return s;
  };
  std::size_t s = 0;
  std::uint64_t value = 0;
  if (digits.empty()) {
    s = 0;  // ".5": "point five"
  } else if (digits.size() > 15 || (digits.size() > 1 && digits[0] == '0')) {
    s = digit_by_digit(digits);  // codes, phone numbers, "007"
  } else {
    for (const char c : digits) value = value * 10 + static_cast<std::uint64_t>(c - '0');
    const bool year = !grouped && fraction.empty() && ordinal_suffix.empty() && digits.size() == 4 &&
                      ((value >= 1100 && value <= 1999) || (value >= 2010 && value <= 2099));
    if (year) {
      const auto hi = value / 100, lo = value % 100;
      s = below_hundred(hi) + (lo == 0 ? 2 : lo < 10 ? 1 + small_number[lo] : below_hundred(lo));  // "nineteen oh five"
    } else {
      s = cardinal(value);
      if (!ordinal_suffix.empty()) {
        const auto last = value % 100;
        if (last % 10 == 2 && last != 12)
          s += 1;  // "second"
        else if (last >= 20 && last % 10 == 0)
          s += 1;  // "twentieth"
      }
    }
  }
  if (!fraction.empty()) s += 1 + digit_by_digit(fraction);  // "point one four"
  return s;
}

}  // namespace ordo::eval::detail::readability
