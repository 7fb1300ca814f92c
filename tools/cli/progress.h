// A one-line progress bar on stderr with rate and ETA, redrawn at most ~5 times a second. On a
// terminal it redraws in place ('\r'); otherwise (CI logs, pipes) it prints a plain line every 10%.
// TrainingProgress turns the events of a training loop (chem/train_run.h: `train shift`, `train pretrain`)
// into one such bar per epoch and lines on stdout, so both commands look and behave alike.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace larmor::chem {
struct TrainLoopEvent;  // chem/train_run.h
}  // namespace larmor::chem

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

// Messages and validation lines go to stdout; each epoch gets a bar over its molecules whose tail on a
// Step event is step_text(event) ("step k/n loss ...").
class TrainingProgress {
 public:
  using StepText = std::function<std::string(const chem::TrainLoopEvent&)>;
  explicit TrainingProgress(StepText step_text) : step_text_(std::move(step_text)) {}
  void on_event(const chem::TrainLoopEvent& e);
  void finish();  // after the loop returns: closes a bar left open by a stopped run

 private:
  StepText step_text_;
  std::unique_ptr<Progress> bar_;
};

}  // namespace larmor::cli
