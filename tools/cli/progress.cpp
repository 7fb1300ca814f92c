#include "tools/cli/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "chem/train_run.h"

namespace larmor::cli {

std::string format_duration(double s) {
  char buf[32];
  if (s < 60) std::snprintf(buf, sizeof buf, "%.1fs", s);
  else if (s < 3600) std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  else std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, (static_cast<int>(s) % 3600) / 60);
  return buf;
}

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(std::max<int64_t>(total, 0)), tty_(isatty(2)),
      start_(std::chrono::steady_clock::now()), last_draw_(start_ - std::chrono::seconds(1)) {}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done, const std::string& extra) {
  auto now = std::chrono::steady_clock::now();
  if (tty_) {
    if (now - last_draw_ < std::chrono::milliseconds(200)) return;
  } else {
    int decile = total_ > 0 ? static_cast<int>(10 * done / total_) : 0;
    if (decile == last_decile_) return;
    last_decile_ = decile;
  }
  last_draw_ = now;
  draw(done, extra, false);
}

void Progress::finish(const std::string& extra) { draw(total_, extra, true); }

void Progress::draw(int64_t done, const std::string& extra, bool final) {
  double t = elapsed_s();
  double rate = t > 0 ? static_cast<double>(done) / t : 0;
  double frac = total_ > 0 ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  constexpr int kWidth = 28;
  int filled = static_cast<int>(frac * kWidth + 0.5);
  std::string bar(static_cast<size_t>(std::clamp(filled, 0, kWidth)), '#');
  bar.resize(kWidth, '.');
  std::string eta = final ? "done in " + format_duration(t)
                          : (rate > 0 ? "ETA " + format_duration(static_cast<double>(total_ - done) / rate) : "ETA ?");
  std::fprintf(stderr, "%s%-14s [%s] %lld/%lld %5.1f %s/s %s%s%s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(),
               static_cast<long long>(done), static_cast<long long>(total_), rate, unit_.c_str(), eta.c_str(),
               extra.empty() ? "" : "  ", extra.c_str(), (final || !tty_) ? "\n" : "");
  std::fflush(stderr);
}

void TrainingProgress::on_event(const chem::TrainLoopEvent& e) {
  using K = chem::TrainLoopEvent::Kind;
  switch (e.kind) {
    case K::Message:
      std::printf("%s\n", e.message.c_str());
      std::fflush(stdout);
      break;
    case K::EpochStart:
      bar_ = std::make_unique<Progress>("epoch " + std::to_string(e.epoch + 1), e.epoch_molecules, "mol");
      break;
    case K::Step:
      if (bar_) bar_->update(e.molecules, step_text_(e));
      break;
    case K::Validation:
      finish();
      std::printf("%s\n", e.message.c_str());
      std::fflush(stdout);
      break;
  }
}

void TrainingProgress::finish() {
  if (bar_) bar_->finish();
  bar_.reset();
}

}  // namespace larmor::cli
