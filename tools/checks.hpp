// tools/checks.hpp — argument checks every ordo tool makes before any work.
//
//   ->check(ordo::tools::positive)        "--epochs: must be a positive number, not 0"
//   ->check(ordo::tools::non_negative)    "--max-tokens: must be a number >= 0, not -5"
//   ->check(ordo::tools::non_empty)       "--model: is empty (leave the option out for its default)"
//   ->check(ordo::tools::within(8, 8192)) "--seq-len: must be a whole number within [8, 8192], not 2.5"
//   ordo::tools::add_threads(app, n)      --threads, 0 (default): the CPUs left idle by others
//   ordo::tools::check_output_dir(out)    an output directory that can be made and written
//   ordo::tools::one_line_errors(app, "ordo-study")   "ordo-study: --epochs: ..." on one line
//   ordo::tools::warn_if_slow_blas("ordo-study")     OpenBLAS on kernels older than the CPU
#pragma once

#include <unistd.h>  // access, getpid

#include <cmath>        // std::isfinite
#include <cstdlib>      // std::getenv
#include <filesystem>   // std::filesystem
#include <fstream>      // std::ofstream
#include <iostream>     // std::cerr
#include <optional>     // std::optional
#include <sstream>      // std::ostringstream
#include <stdexcept>    // std::invalid_argument
#include <string>       // std::string
#include <type_traits>  // std::is_integral_v

#include <CLI/CLI.hpp>

#include <ordo/io/cpu.hpp>           // idle_cpus
#include <ordo/io/crash_report.hpp>  // install_crash_report

namespace ordo::tools {

/// A number > 0 (CLI11's PositiveNumber prints its range as 309 digits).
inline const CLI::Validator positive(
    [](std::string& text) -> std::string {
      try {
        std::size_t used = 0;
        const double v = std::stod(text, &used);
        if (used == text.size() && std::isfinite(v) && v > 0) return {};
      } catch (const std::exception&) {
      }
      return "must be a positive number, not " + (text.empty() ? std::string("an empty value") : text);
    },
    "POSITIVE", "positive");

/// A number >= 0 (0 usually meaning "no limit").
inline const CLI::Validator non_negative(
    [](std::string& text) -> std::string {
      try {
        std::size_t used = 0;
        const double v = std::stod(text, &used);
        if (used == text.size() && std::isfinite(v) && v >= 0) return {};
      } catch (const std::exception&) {
      }
      return "must be a number >= 0, not " + (text.empty() ? std::string("an empty value") : text);
    },
    "NON-NEGATIVE", "non_negative");

/// A number within [lo, hi], a whole one when T is an integer type: "--seq-len: must be a whole
/// number within [8, 8192], not 2.5" (CLI11's Range says "Value abc not in range 0.000000 to
/// 1.000000" and leaves a fraction to a second message).
template <class T>
CLI::Validator within(T lo, T hi) {
  static_assert(std::is_arithmetic_v<T>, "ordo::tools::within: a number type");
  const auto text_of = [](T v) {
    std::ostringstream s;
    s << v;
    return s.str();
  };
  const std::string range = "[" + text_of(lo) + ", " + text_of(hi) + "]";
  const std::string kind = std::is_integral_v<T> ? "a whole number" : "a number";
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        try {
          std::size_t used = 0;
          if constexpr (std::is_integral_v<T>) {
            const long long v = std::stoll(text, &used);
            if (used == text.size() && v >= static_cast<long long>(lo) && v <= static_cast<long long>(hi)) return {};
          } else {
            const double v = std::stod(text, &used);
            if (used == text.size() && std::isfinite(v) && v >= static_cast<double>(lo) && v <= static_cast<double>(hi))
              return {};
          }
        } catch (const std::exception&) {
        }
        return "must be " + kind + " within " + range + ", not " + (text.empty() ? std::string("an empty value") : text);
      },
      range, "within");
}

/// A value that is not empty: an option given as "" (an unset shell variable, say) is an error,
/// not the option's default.
inline const CLI::Validator non_empty(
    [](std::string& text) -> std::string {
      return text.empty() ? "is empty (leave the option out for its default)" : std::string();
    },
    "", "non_empty");

/// --threads N; 0, the default, takes the CPUs other processes leave idle when the tool starts
/// (ordo::io::idle_cpus: one busy CPU made two threads 10-20 times slower than one).
inline CLI::Option* add_threads(CLI::App& app, int& threads) {
  threads = 0;
  return app
      .add_option("--threads", threads,
                  "CPU threads (default 0: the CPUs other processes leave idle, measured when the tool starts)")
      ->check(non_negative);
}

/// The thread count to use for a --threads value (0: idle_cpus()).
inline int resolve_threads(int threads) { return threads > 0 ? threads : ordo::io::idle_cpus(); }

/// "ordo-study: warning: OpenBLAS runs its generic Prescott kernels ..." on stderr when the
/// process's OpenBLAS fell back to kernels older than the CPU (ordo::io::slow_blas_warning).
inline void warn_if_slow_blas(const std::string& program) {
  if (const auto w = ordo::io::slow_blas_warning()) std::cerr << program << ": warning: " << *w << "\n";
}

/// Fails unless `out` can become an output directory: not empty, not an existing file, and the
/// nearest existing directory on its path writable (probed with a file that is removed again).
/// Creates nothing.
inline void check_output_dir(const std::filesystem::path& out, const std::string& flag = "--out") {
  namespace fs = std::filesystem;
  if (out.empty()) throw std::invalid_argument(flag + " is empty: give an output directory");
  std::error_code ec;
  if (fs::exists(out, ec) && !fs::is_directory(out, ec))
    throw std::invalid_argument(out.string() + ": exists and is not a directory (" + flag + ")");
  auto dir = fs::absolute(out, ec);
  if (ec) throw std::invalid_argument(out.string() + ": " + ec.message() + " (" + flag + ")");
  while (!fs::exists(dir, ec) && dir.has_parent_path() && dir.parent_path() != dir) dir = dir.parent_path();
  if (!fs::is_directory(dir, ec))
    throw std::invalid_argument(out.string() + ": cannot be created, " + dir.string() + " is not a directory (" +
                                flag + ")");
  const auto probe = dir / (".ordo-write-probe-" + std::to_string(::getpid()));
  {
    std::ofstream f(probe);
    if (!f || !(f << "probe") || !f.flush())
      throw std::invalid_argument(out.string() + ": cannot write into " + dir.string() + " (" + flag + ")");
  }
  fs::remove(probe, ec);
}

/// Whether `program` can be run as a shell runs it: a path (with a '/') that is an executable
/// file, or a name found in $PATH. For options such as --python, checked before any work: a
/// wrong value would otherwise show only as a missing result at the end of a run.
inline bool runnable_program(const std::string& program) {
  if (program.empty()) return false;
  if (program.find('/') != std::string::npos) return ::access(program.c_str(), X_OK) == 0;
  const char* path = std::getenv("PATH");
  for (std::string dirs = path ? path : ""; !dirs.empty();) {
    const auto colon = dirs.find(':');
    const std::string dir = dirs.substr(0, colon);
    dirs = colon == std::string::npos ? "" : dirs.substr(colon + 1);
    if (::access(((dir.empty() ? "." : dir) + "/" + program).c_str(), X_OK) == 0) return true;
  }
  return false;
}

/// CLI11's words for a parse error, except a value that is not a number of the option's type
/// ("Could not convert: --epochs = 2.5"), said as the tools' validators say theirs: "--epochs:
/// must be a whole number, not 2.5".
inline std::string described(const CLI::App* app, const CLI::Error& e) {
  const std::string what = e.what();
  const std::string prefix = "Could not convert: ";
  const auto equals = what.find(" = ");
  if (e.get_name() != "ConversionError" || app == nullptr || what.rfind(prefix, 0) != 0 || equals == std::string::npos)
    return what;
  const std::string name = what.substr(prefix.size(), equals - prefix.size());
  const std::string value = what.substr(equals + 3);
  const CLI::Option* option = app->get_option_no_throw(name);
  if (option == nullptr) return what;
  const std::string type = option->get_type_name();
  const char* kind = type.rfind("INT", 0) == 0 || type.rfind("UINT", 0) == 0 ? "a whole number"
                     : type.rfind("FLOAT", 0) == 0                           ? "a number"
                                                                             : nullptr;
  if (kind == nullptr) return what;
  return name + ": must be " + kind + ", not " + (value.empty() ? std::string("an empty value") : value);
}

/// Command-line errors as one line on stderr, "<tool>: <what> (--help lists the options)", like
/// the tools' other errors (CLI11 adds a second line by default).
/// Also reports a fatal signal (a crash) under the tool's name with its call site and stack
/// (ordo/io/crash_report.hpp) before the process dies of it.
inline void one_line_errors(CLI::App& app, const std::string& tool) {
  app.failure_message([tool](const CLI::App* parsed, const CLI::Error& e) {
    return tool + ": " + described(parsed, e) + " (--help lists the options)\n";
  });
  static std::string crash_name;  // outlives main: the handler reads it
  crash_name = tool;
  io::install_crash_report(crash_name.c_str());
}

/// Parses the command line. Returns the status the tool must exit with when it should stop here:
/// 0 after --help, 1 after an error (printed by one_line_errors' message), as for the tools' other
/// errors; CLI11's own codes (105 for a failed validator, 106 for an unknown option...) would
/// make "exit status 1" depend on which check caught the mistake.
[[nodiscard]] inline std::optional<int> parse_command_line(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
    return std::nullopt;
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 1;
  }
}

}  // namespace ordo::tools
