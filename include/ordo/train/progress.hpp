// ordo/train/progress.hpp — ordo::progress_fn, how long work reports how far it got.
#pragma once

#include <functional>  // std::function
#include <string>      // std::string

namespace ordo {

/// Progress of long work, one line at a time (the caller decides whether a terminal shows it).
using progress_fn = std::function<void(const std::string& what, double fraction, const std::string& detail)>;

}  // namespace ordo
