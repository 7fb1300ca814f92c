// A one-line progress bar on stderr with rate and ETA, redrawn at most ~5 times a second. On a
// terminal it redraws in place ('\r'); otherwise (CI logs, pipes) it prints a plain line every 10%.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace larmor::cli {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "mol");
  void update(int64_t done, const std::string& extra = "");  // thread-compatible: call from one thread
  void finish(const std::string& extra = "");
  double elapsed_s() const;

 private:
  void draw(int64_t done, const std::string& extra, bool final);
  std::string label_, unit_;
  int64_t total_;
  bool tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12.3s"

}  // namespace larmor::cli
