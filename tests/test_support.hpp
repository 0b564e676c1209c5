// Small helpers shared by ordo's tests.
#pragma once

#include <exception>
#include <functional>
#include <string>

/// The message of the exception f throws, or "(no error)" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}
