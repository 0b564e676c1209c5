// ordo/io/progress.hpp — ProgressLine: how long work reports itself. On a terminal, one line
// that is rewritten in place (at most 10 times a second); anywhere else (a log file, CI, nohup),
// a full line every `interval` seconds, so that a log is never silent for long and does not fill
// with carriage returns. Torch-free.
//
//   ordo::io::ProgressLine line;                     // stderr; a line every 5 s when not a tty
//   for (...) line.update("perplexity", done / total, "1234/5000 tokens, 410 tokens/s");
//   line.finish();                                   // ends the rewritten line on a terminal
#pragma once

#include <unistd.h>  // isatty, fileno

#include <chrono>  // std::chrono::steady_clock
#include <cstdio>  // std::FILE, std::fprintf, std::fflush
#include <string>  // std::string

namespace ordo::io {

class ProgressLine {
 public:
  using clock = std::chrono::steady_clock;

  explicit ProgressLine(std::FILE* out = stderr, double interval_seconds = 5.0, std::string indent = "    ")
      : out_(out), tty_(isatty(fileno(out)) != 0), interval_(interval_seconds), indent_(std::move(indent)) {}

  /// Whether the output is a terminal (the line is rewritten in place).
  bool tty() const { return tty_; }

  /// Reports `what` at `fraction` (0..1) of its work, with `detail`. Prints when due: on a
  /// terminal every 0.1 s, elsewhere every `interval` seconds; the first report of a `what` that
  /// differs from the last one's is printed at once elsewhere only after `interval` as well, so a
  /// quick step prints nothing.
  void update(const std::string& what, double fraction, const std::string& detail = {}) {
    const auto now = clock::now();
    const double since = std::chrono::duration<double>(now - last_).count();
    if (since < (tty_ ? 0.1 : interval_)) return;
    last_ = now;
    if (tty_) {
      std::fprintf(out_, "\r\033[K%s%s %3.0f%% %s", indent_.c_str(), what.c_str(), 100 * fraction, detail.c_str());
      open_ = true;
    } else {
      std::fprintf(out_, "%s%s %3.0f%% %s\n", indent_.c_str(), what.c_str(), 100 * fraction, detail.c_str());
    }
    std::fflush(out_);
  }

  /// Ends a line left open on a terminal (nothing elsewhere).
  void finish() {
    if (open_) std::fprintf(out_, "\n");
    open_ = false;
  }

  /// Clears a line left open on a terminal, so that another message can take its place.
  void clear() {
    if (open_) std::fprintf(out_, "\r\033[K");
    open_ = false;
  }

 private:
  std::FILE* out_;
  bool tty_;
  double interval_;
  std::string indent_;
  clock::time_point last_ = clock::now();
  bool open_ = false;
};

}  // namespace ordo::io
