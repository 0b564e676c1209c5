// Small helpers shared by ordo's tests.
#pragma once

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

/// The message of the exception f throws, or "(no error)" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

/// The one way a test skips. It prints "ORDO-SKIPPED: <reason>" and ends the program with exit
/// status 77. Every ctest test of tests/ (ordo_test() in tests/CMakeLists.txt), like the
/// examples' output checks (cmake/ordo_check_output.cmake), is skipped when its output holds
/// that marker (SKIP_REGULAR_EXPRESSION): ctest reports it as Skipped, the reason in its output;
/// a test run without that property fails on status 77 rather than passing. The whole program
/// ends, so a test that needs something optional (the default model, MiniLM, a corpus, a judge
/// server, a GPU) lives in a doctest suite of its own that runs as its own ctest test
/// (ordo_test(... SUITE <suite>)), or in a program of its own.
[[noreturn]] inline void skip_test(std::string_view reason) {
  std::cout << "ORDO-SKIPPED: " << reason << std::endl;
  std::exit(77);
}

#ifdef ORDO_SOURCE_DIR
/// Where a corpus of `./ordo data` lies: the environment variable `env` when set, else
/// data/<name> in the source tree.
inline std::filesystem::path corpus_dir(const char* env, const char* name) {
  if (const char* v = std::getenv(env)) return v;
  return std::filesystem::path(ORDO_SOURCE_DIR) / "data" / name;
}
#endif

/// Skips unless `path` exists: "<what> is not installed at <path> (<how to install it>)".
inline void skip_unless_installed(const std::filesystem::path& path, std::string_view what, std::string_view how) {
  if (!std::filesystem::exists(path))
    skip_test(std::string(what) + " is not installed at " + path.string() + " (" + std::string(how) + ")");
}

/// n values drawn from N(0, scale^2) by a generator seeded with `seed` (test weights and inputs).
inline std::vector<float> normal_values(std::size_t n, float scale, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
