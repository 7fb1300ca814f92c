// `larmor prepare`: builds the prepared dataset from the NMRShiftDB2-derived sources (chem/ob_prepare.h),
// with a progress bar, a report (counts per source/nucleus/split, exclusions by reason, conformer failures,
// time and molecules/s) and a list of every rejected item next to the output (<out>.problems.tsv).
// Re-running with the same inputs and options reuses the existing output (the cache).
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "chem/dataset.h"
#include "engine/error.h"
#include "tools/cli/commands.h"
#include "tools/cli/progress.h"
#ifdef LARMOR_WITH_OPENBABEL
#include <filesystem>

#include "chem/ob_prepare.h"
#endif

namespace larmor::cli {
namespace {

struct PrepareArgs {
  std::string data = "../shared/data";
  std::string out = "data/nmrshiftdb2.safetensors";
  std::string sources = "nmr8k,pb";
  std::string nuclei = "13C,1H";
  uint64_t seed = 1;
  int workers = 0;
  int steps = 200;
  int64_t limit = 0;
  bool force = false;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

#ifdef LARMOR_WITH_OPENBABEL
void run_prepare(const PrepareArgs& a) {
  chem::PrepareOptions o;
  o.data_dir = a.data;
  o.sources = split_list(a.sources);
  o.nuclei.clear();
  for (const std::string& n : split_list(a.nuclei)) {
    auto nucleus = chem::parse_nucleus(n);
    if (!nucleus) throw larmor::Error("prepare: unknown nucleus '" + n + "' (expected 1H, 13C, 19F or 31P)");
    o.nuclei.push_back(*nucleus);
  }
  o.seed = a.seed;
  o.workers = a.workers;
  o.conformer_steps = a.steps;
  o.limit = a.limit;

  std::string signature = chem::prepare_inputs_signature(o);
  if (!a.force && std::filesystem::exists(a.out)) {
    try {
      auto info = chem::read_dataset_info(a.out);
      if (info.count("inputs") && info.at("inputs") == signature) {
        std::printf("%s is up to date with its inputs (cache reused; --force rebuilds)\n\n", a.out.c_str());
        std::printf("%s", chem::dataset_summary(chem::load_dataset(a.out)).c_str());
        return;
      }
    } catch (const larmor::Error&) {
      // unreadable or foreign file: rebuild
    }
  }

  chem::PrepareReport report;
  std::unique_ptr<Progress> bar;
  chem::PrepareProgress progress;
  progress.begin = [&](const std::string& stage, int64_t total) {
    if (total > 0) bar = std::make_unique<Progress>(stage, total);
    else std::fprintf(stderr, "%s ...\n", stage.c_str());
  };
  progress.update = [&](int64_t done) { if (bar) bar->update(done); };
  progress.end = [&] {
    if (bar) bar->finish();
    bar.reset();
  };
  chem::Dataset ds = chem::prepare_dataset(o, report, progress);
  std::filesystem::path out(a.out);
  if (out.has_parent_path()) std::filesystem::create_directories(out.parent_path());
  chem::save_dataset(a.out, ds);

  std::string problems_path = a.out + ".problems.tsv";
  {
    std::ofstream pf(problems_path);
    pf << "item\treason\n";
    for (const std::string& p : report.problems) {
      auto colon = p.find(": ");
      pf << p.substr(0, colon) << "\t" << (colon == std::string::npos ? "" : p.substr(colon + 2)) << "\n";
    }
  }

  std::printf("\n== larmor prepare: %s ==\n\n", a.out.c_str());
  std::printf("%s\n", chem::dataset_summary(ds).c_str());
  std::printf("counts:\n");
  for (const auto& [k, v] : report.counts) std::printf("  %-55s %lld\n", k.c_str(), static_cast<long long>(v));
  std::printf("exclusions by reason (each item listed in %s):\n", problems_path.c_str());
  if (report.exclusions.empty()) std::printf("  none\n");
  // Reasons carry details (atom numbers, counts); group by the text before the first digit-bearing detail.
  for (const auto& [k, v] : report.exclusions) std::printf("  %-90.90s %lld\n", k.c_str(), static_cast<long long>(v));
  std::printf("\ntime: %s total (reading and parsing %s, conformers %s), %.1f molecules/s overall\n",
              format_duration(report.seconds_total).c_str(), format_duration(report.seconds_parse).c_str(),
              format_duration(report.seconds_conformers).c_str(),
              report.seconds_total > 0 ? static_cast<double>(report.molecules) / report.seconds_total : 0.0);
}
#endif

}  // namespace

void add_prepare_command(CLI::App& app) {
  auto a = std::make_shared<PrepareArgs>();
  auto* cmd = app.add_subcommand("prepare", "Build the prepared NMR dataset (molecules, 3-D conformers, shifts, peak sets, split)");
  cmd->add_option("--data", a->data, "folder with the NMRShiftDB2-derived sources")->capture_default_str();
  cmd->add_option("--out", a->out, "output dataset (safetensors)")->capture_default_str();
  cmd->add_option("--sources", a->sources, "comma-separated: nmr8k, pb, f19, p31, literature")->capture_default_str();
  cmd->add_option("--nuclei", a->nuclei, "comma-separated: 13C, 1H, 19F, 31P")->capture_default_str();
  cmd->add_option("--seed", a->seed, "split and conformer seed")->capture_default_str();
  cmd->add_option("--workers", a->workers, "conformer worker processes (0: all cores)")->capture_default_str();
  cmd->add_option("--steps", a->steps, "MMFF94 minimisation steps per molecule")->capture_default_str();
  cmd->add_option("--limit", a->limit, "at most this many molecules per source (0: all)")->capture_default_str();
  cmd->add_flag("--force", a->force, "rebuild even if the output is up to date");
  cmd->callback([a] {
#ifdef LARMOR_WITH_OPENBABEL
    run_prepare(*a);
#else
    throw larmor::Error("prepare: this larmor was built without Open Babel 3 (install libopenbabel-dev and rebuild)");
#endif
  });
}

}  // namespace larmor::cli
