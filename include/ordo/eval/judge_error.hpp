// ordo/eval/judge_error.hpp — JudgeError, the exception of the LLM judge (judge.hpp) and of
// its HTTP client (http_client.hpp). Torch-free.
#pragma once

#include <stdexcept>  // std::runtime_error

namespace ordo::eval {

/// A failed judge request: transport, HTTP status, response format, or no score in the replies.
class JudgeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ordo::eval
