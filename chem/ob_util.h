// Helpers shared by the Open Babel translation units (chem/ob_*.cpp only: this header includes Open Babel).
//
// Open Babel reports problems through one global log (OpenBabel::obErrorLog) that, by default, prints to
// stderr and appends every message, audit messages included, to an unbounded-by-default list. Over 50,000
// molecules that is noise on the terminal and a data race when threads share it. init_openbabel() therefore
// switches the log off and points its output at a sink; ObMessageCapture switches it on for the duration of
// one Open Babel call sequence, under a process-wide mutex, and hands back the warnings and errors so they
// can go into the larmor::Error that explains a rejected molecule.
#pragma once
#include <openbabel/oberror.h>

#include <mutex>
#include <string>
#include <vector>

#include "chem/ob_molecule.h"

namespace larmor::chem::ob {

// The lock that serialises use of Open Babel's global message log (and parsing in general). Recursive, so
// a capture may be opened inside another on the same thread (the inner one then sees the outer's messages).
std::recursive_mutex& log_mutex();
// set_openbabel_message_capture() state.
bool message_capture_enabled();

// "=====\n*** Open Babel Warning  in ParseSmiles\n  Failed to kekulize aromatic SMILES\n" -> the message
// text alone ("ParseSmiles: Failed to kekulize aromatic SMILES"), whitespace collapsed.
std::string clean_message(const std::string& formatted);

// RAII: holds log_mutex(); while alive and capture is enabled, Open Babel's warnings and errors are
// collected (nothing is printed). messages() returns them cleaned, errors and warnings only.
class ObMessageCapture {
 public:
  ObMessageCapture();
  ~ObMessageCapture();
  ObMessageCapture(const ObMessageCapture&) = delete;
  ObMessageCapture& operator=(const ObMessageCapture&) = delete;

  std::vector<std::string> messages() const;
  // True when any collected message contains `needle` (case-sensitive).
  bool contains(const std::string& needle) const;
  // "; Open Babel: msg1; msg2" or "" when there were none: appended to error messages.
  std::string suffix() const;

 private:
  std::lock_guard<std::recursive_mutex> lock_;
  bool outermost_ = false;
  bool capturing_ = false;
};

}  // namespace larmor::chem::ob
