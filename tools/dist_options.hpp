// tools/dist_options.hpp — `--dist-timeout`, the same in every tool that runs data-parallel.
//
//   --dist-timeout S   seconds a rank waits for the others at the rendezvous and at every
//                      collective before it stops with an error naming itself (default:
//                      ORDO_DIST_TIMEOUT, else 120)
//
// `join()` joins the process group torchrun's variables describe (nullptr: one process), after
// the tool has checked its arguments and output path.
#pragma once

#include <chrono>
#include <memory>
#include <optional>

#include <CLI/CLI.hpp>

#include <ordo/train/distributed.hpp>

namespace ordo::tools {

struct dist_flags {
  int timeout_seconds = 0;

  void add_to(CLI::App& app) {
    app.add_option("--dist-timeout", timeout_seconds,
                   "data-parallel runs: seconds a rank waits for the others before it stops with an error "
                   "(default: ORDO_DIST_TIMEOUT, else 120)")
        ->check(CLI::Range(1, 86400));
  }
  std::shared_ptr<dist::group> join() const {
    if (timeout_seconds > 0) return dist::group::from_environment(std::chrono::seconds(timeout_seconds));
    return dist::group::from_environment();
  }
};

}  // namespace ordo::tools
