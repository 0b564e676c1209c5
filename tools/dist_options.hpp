// tools/dist_options.hpp — `--dist-timeout` and `--dist-overlap`, the same in every tool that runs
// data-parallel.
//
//   --dist-timeout S   seconds a rank waits for the others at the rendezvous and at every
//                      collective before it stops with an error naming itself (default:
//                      ORDO_DIST_TIMEOUT, else 120)
//   --dist-overlap M   auto|on|off: all-reduce the gradients during each step's last backward
//                      pass (on), after it (off), or during it only where a core is free for
//                      Gloo's threads (auto, default); the weights are the same bit for bit
//
// `join()` joins the process group torchrun's variables describe (nullptr: one process), after
// the tool has checked its arguments and output path.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include <ordo/train/distributed.hpp>

#include "checks.hpp"  // within

namespace ordo::tools {

struct dist_flags {
  int timeout_seconds = 0;
  std::string overlap = "auto";

  void add_to(CLI::App& app) {
    app.add_option("--dist-timeout", timeout_seconds,
                   "data-parallel runs: seconds a rank waits for the others before it stops with an error "
                   "(default: ORDO_DIST_TIMEOUT, else 120)")
        ->check(ordo::tools::within(1, 86400));
    app.add_option("--dist-overlap", overlap,
                   "data-parallel runs: all-reduce gradients during the last backward pass (on), after it (off), "
                   "or during it where a core is free for the reduction (auto)")
        ->check(CLI::IsMember({"auto", "on", "off"}));
  }
  std::shared_ptr<dist::group> join() const {
    auto group = timeout_seconds > 0 ? dist::group::from_environment(std::chrono::seconds(timeout_seconds))
                                     : dist::group::from_environment();
    if (group)
      group->set_overlap(overlap == "on"    ? dist::group::overlap_mode::on
                         : overlap == "off" ? dist::group::overlap_mode::off
                                            : dist::group::overlap_mode::automatic);
    return group;
  }
};

}  // namespace ordo::tools
