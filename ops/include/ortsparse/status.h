// Result of an operation that can fail with a message meant for the user of the op.
#pragma once

#include <sstream>
#include <string>
#include <utility>

namespace ortsparse {

class [[nodiscard]] Status {
 public:
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !failed_; }
  const std::string& message() const { return message_; }

 private:
  Status() = default;
  explicit Status(std::string message) : failed_(true), message_(std::move(message)) {}

  bool failed_ = false;
  std::string message_;
};

// Error whose message is the concatenation of the parts, streamed as with operator<<.
template <typename... Parts>
Status ErrorStatus(const Parts&... parts) {
  std::ostringstream message;
  (message << ... << parts);
  return Status::Error(message.str());
}

}  // namespace ortsparse

// Returns the status from the enclosing function if it is an error.
#define ORTSPARSE_RETURN_IF_ERROR(expression)        \
  do {                                               \
    ::ortsparse::Status ortsparse_status_ = (expression); \
    if (!ortsparse_status_.ok()) return ortsparse_status_; \
  } while (false)
