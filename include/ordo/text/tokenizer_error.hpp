// ordo/text/tokenizer_error.hpp — TokenizerError: a tokenizer file or vocabulary ordo cannot load.
#pragma once

#include <stdexcept>  // std::runtime_error

namespace ordo {

/// A tokenizer file or vocabulary that ordo cannot load; what() names the source and the problem.
class TokenizerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ordo
