// Errors: every failure in larmor is a larmor::Error (a std::runtime_error) whose message names the
// operation and the offending shapes/values. Nothing in the engine aborts on bad input.
#pragma once
#include <stdexcept>
#include <string>

namespace larmor {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// LARMOR_CHECK(cond, message-expression): throws larmor::Error(message) when cond is false.
#define LARMOR_CHECK(cond, msg)                                   \
  do {                                                            \
    if (!(cond)) throw ::larmor::Error(std::string() + msg);      \
  } while (0)

}  // namespace larmor
