// `larmor index` and `larmor retrieve`: spectrum -> structure search with the alignment model. Thin wrappers
// over chem/align_index.h (format, search, query embedding, output) and chem/ob_align_index.h (SMILES/SDF
// library -> index, Open Babel). Both commands live in one file because they share the model loading, the
// library reading and the model/index consistency check; one registration function adds both.
//
//   larmor index --model ALIGN.safetensors (--library lib.smi|lib.sdf | --data prepared.safetensors) --out lib.index
//   larmor retrieve --model ALIGN.safetensors --peaks FILE (--index lib.index | --library lib.smi|sdf)
//                   [--top 10] [--formula C9H10O2] [--mass 150.07 --mass-tol 0.5] [--format table|csv|json]
//                   [--rerank-model SHIFT.safetensors [--rerank-top 50] [--solvent CDCl3]]
//
// --rerank-model re-orders the alignment model's top hits by the combination `larmor eval align` measured
// best (chem::rerank_retrieval): each candidate is built from its SMILES with Open Babel, given a conformer
// and 13C shifts by the shift model (ShiftPredictor), and scored by how well those shifts explain the peak
// list plus the alignment logit. One candidate at a time: a few tens of conformers and forwards, and a
// candidate that fails is reported and ranked last instead of stopping the search.
// The peak list is read and checked before the model or library is loaded, so a bad list fails fast with
// its file and line. --timing prints the time of each phase on stderr (loading, query, search).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chem/align_index.h"
#include "chem/align_training.h"
#include "chem/peak_list.h"
#include "engine/error.h"
#include "engine/thread_pool.h"
#include "tools/cli/commands.h"
#include "tools/cli/progress.h"

#ifdef LARMOR_WITH_OPENBABEL
#include "chem/ob_align_index.h"
#include "chem/ob_assign.h"
#include "chem/ob_molecule.h"
#include "chem/ob_predict.h"
#endif

namespace larmor::cli {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct LoadedModel {
  chem::LoadedAlignModel m;
  std::string fingerprint;
};

LoadedModel load_model(const std::string& path) {
  LoadedModel out;
  out.m = chem::load_align_model(path);
  out.fingerprint = chem::align_model_fingerprint(*out.m.model);
  return out;
}

// The library as an index built now from a SMILES/SDF file; bad records are reported on stderr.
chem::AlignIndex index_from_library(const char* cmd, AlignModel& model, const std::string& path, int64_t batch,
                                    bool quiet) {
#ifdef LARMOR_WITH_OPENBABEL
  if (!std::filesystem::exists(path) && path != "-") throw Error(std::string(cmd) + ": no such library '" + path + "'");
  chem::AlignLibraryStats st;
  chem::AlignIndex index = chem::build_align_index_from_library(
      model, path, [&](const std::string& m) { std::fprintf(stderr, "larmor %s: skipped %s\n", cmd, m.c_str()); }, &st,
      batch);
  if (!quiet || st.bad > 0)
    std::fprintf(stderr, "larmor %s: %s: %lld records, %lld indexed, %lld bad (skipped), %lld without carbon (skipped)\n",
                 cmd, path.c_str(), static_cast<long long>(st.records), static_cast<long long>(st.indexed),
                 static_cast<long long>(st.bad), static_cast<long long>(st.no_carbon));
  if (index.size() == 0) throw Error(std::string(cmd) + ": no molecule of '" + path + "' could be indexed");
  return index;
#else
  (void)model, (void)batch, (void)quiet;
  throw Error(std::string(cmd) + ": --library " + path +
              " needs Open Babel 3 (install libopenbabel-dev and rebuild), or use an index built elsewhere");
#endif
}

struct IndexArgs {
  std::string model, library, data, out, dtype = "f32";
  int64_t batch = 256;
  int threads = 0;
};

void run_index(const IndexArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  if (a.library.empty() == a.data.empty()) throw Error("index: give exactly one of --library, --data");
  const StoredFloat storage = parse_stored_float(a.dtype);
  if (storage == StoredFloat::BF16) throw Error("index: --dtype must be f32 or f16");
  const auto t0 = Clock::now();
  LoadedModel lm = load_model(a.model);
  chem::AlignIndex index;
  if (!a.library.empty()) {
    index = index_from_library("index", *lm.m.model, a.library, a.batch, false);
  } else {
    if (!std::ifstream(a.data)) throw Error("index: cannot open dataset '" + a.data + "'");
    const chem::Dataset ds = chem::load_dataset(a.data);
    int64_t skipped = 0;
    index = chem::build_align_index(*lm.m.model, ds, a.batch, &skipped);
    index.source = a.data;
    std::fprintf(stderr, "larmor index: %s: %zu entries, %lld indexed, %lld without carbon (skipped)\n", a.data.c_str(),
                 ds.entries.size(), static_cast<long long>(index.size()), static_cast<long long>(skipped));
    if (index.size() == 0) throw Error("index: no molecule of '" + a.data + "' could be indexed");
  }
  index.model_path = a.model;
  chem::save_align_index(a.out, index, storage);
  std::printf("index of %lld molecules (%lld-wide %s embeddings, model %s) written to %s in %s\n",
              static_cast<long long>(index.size()), static_cast<long long>(index.dim), stored_float_name(storage),
              index.model_fingerprint.c_str(), a.out.c_str(), format_duration(since(t0)).c_str());
}

struct RetrieveArgs {
  std::string model, peaks, index, library, formula, format = "table", rerank_model, solvent = "unknown";
  int64_t top = 10, batch = 256, rerank_top = 50;
  double mass = NAN, mass_tol = 0.5;
  bool timing = false;
  int threads = 0;
};

#ifdef LARMOR_WITH_OPENBABEL
// The candidate's carbon classes with the shift model's 13C predictions (class means). Throws larmor::Error when
// the SMILES or the prediction fails.
std::vector<chem::CarbonClass> predicted_classes_of(ShiftPredictor& predictor, const chem::AlignIndexMolecule& m,
                                                    chem::Solvent solvent) {
  return predict_carbon_classes(predictor, chem::molecule_from_smiles(m.smiles, m.id), solvent);
}
#endif

// Re-orders the first rerank_top hits with the shift model (see the top of this file).
void rerank_hits(const RetrieveArgs& a, chem::RetrievalResult& r, const chem::AlignIndex& index,
                 const std::vector<chem::Peak>& peaks) {
#ifdef LARMOR_WITH_OPENBABEL
  const chem::Solvent solvent = chem::solvent_flag_or_throw(a.solvent, "retrieve");
  std::optional<ShiftPredictor> loaded;
  try {
    loaded.emplace(a.rerank_model);
  } catch (const Error& e) {
    throw Error("retrieve: --rerank-model '" + a.rerank_model + "' is not a usable shift model: " + e.what());
  }
  ShiftPredictor& predictor = *loaded;
  if (!predictor.available_nuclei()[static_cast<size_t>(chem::Nucleus::C13)])
    throw Error("retrieve: --rerank-model '" + a.rerank_model + "' has no 13C head");
  const chem::AlignEvalOptions evaluated;  // u and w as chosen for `larmor eval align`
  chem::rerank_retrieval(
      r, index, peaks, [&](const chem::AlignIndexMolecule& m) { return predicted_classes_of(predictor, m, solvent); },
      a.rerank_top, a.top, evaluated.unmatched_penalty, evaluated.combine_weight,
      [](const std::string& w) { std::fprintf(stderr, "larmor retrieve: warning: cannot re-rank %s\n", w.c_str()); });
#else
  (void)a, (void)r, (void)index, (void)peaks;  // refused in run_retrieve before anything is loaded
#endif
}

void run_retrieve(const RetrieveArgs& a) {
  if (a.threads > 0) set_num_threads(a.threads);
  if (a.index.empty() == a.library.empty()) throw Error("retrieve: give exactly one of --index, --library");
  if (a.format != "table" && a.format != "csv" && a.format != "json")
    throw Error("retrieve: --format must be table, csv or json");
  if (a.top < 1) throw Error("retrieve: --top must be >= 1");
  if (!(a.mass_tol >= 0)) throw Error("retrieve: --mass-tol must be >= 0");
  const bool rerank = !a.rerank_model.empty();
  if (rerank && a.rerank_top < 1) throw Error("retrieve: --rerank-top must be >= 1");
  if (rerank) chem::solvent_flag_or_throw(a.solvent, "retrieve");  // a bad solvent fails before anything is loaded
#ifndef LARMOR_WITH_OPENBABEL
  if (rerank)
    throw Error("retrieve: --rerank-model " + a.rerank_model +
                " needs Open Babel 3 (install libopenbabel-dev and rebuild): candidates are rebuilt from their SMILES");
#endif
  if (rerank && !std::filesystem::exists(a.rerank_model))
    throw Error("retrieve: no such --rerank-model '" + a.rerank_model + "'");
  chem::RetrievalFilter filter;
  if (!a.formula.empty()) {
    chem::parse_formula(a.formula);  // a bad formula fails before anything is loaded
    filter.formula = a.formula;
  }
  filter.mass = a.mass;
  filter.mass_tolerance = a.mass_tol;
  auto t = Clock::now();
  const std::vector<chem::Peak> peaks = chem::read_peak_list_file(a.peaks);
  LoadedModel lm = load_model(a.model);
  AlignModel& model = *lm.m.model;
  const std::vector<float> query = chem::embed_peak_list(model, peaks, a.peaks);
  const double t_query = since(t);

  t = Clock::now();
  chem::AlignIndex index;
  if (!a.index.empty()) {
    index = chem::load_align_index(a.index);
    chem::check_align_index_model(index, a.index, model, lm.fingerprint, a.model);
  } else {
    index = index_from_library("retrieve", model, a.library, a.batch, true);
  }
  const double t_library = since(t);

  t = Clock::now();
  chem::RetrievalResult r = chem::search_align_index(index, query, model.config().logit_scale,
                                                     rerank ? std::max(a.top, a.rerank_top) : a.top, filter);
  const double t_search = since(t);

  t = Clock::now();
  if (rerank) rerank_hits(a, r, index, peaks);
  const double t_rerank = since(t);

  std::string text;
  if (a.format == "table") text = chem::format_retrieval_table(r, index, a.peaks);
  else if (a.format == "csv") text = chem::format_retrieval_csv(r, index);
  else text = chem::format_retrieval_json(r, index, a.peaks) + "\n";
  std::fputs(text.c_str(), stdout);
  if (a.timing) {
    std::fprintf(stderr, "larmor retrieve: model + query %.3f s, library %s %.3f s (%lld molecules), search %.4f s",
                 t_query, a.index.empty() ? "built" : "loaded", t_library, static_cast<long long>(index.size()), t_search);
    if (rerank) std::fprintf(stderr, ", re-rank %.3f s (%lld candidates)", t_rerank, static_cast<long long>(r.reranked));
    std::fprintf(stderr, "\n");
  }
  if (r.candidates == 0) std::fprintf(stderr, "larmor retrieve: no library molecule passes the filters\n");
}

}  // namespace

void add_retrieve_command(CLI::App& app) {
  auto ia = std::make_shared<IndexArgs>();
  auto* ic = app.add_subcommand("index", "Embed a molecule library with an alignment model for larmor retrieve");
  ic->add_option("--model", ia->model, "alignment checkpoint (larmor train align)")->required();
  ic->add_option("--library", ia->library, "SMILES or SD file (.gz/.xz accepted)");
  ic->add_option("--data", ia->data, "prepared dataset (every molecule with a carbon), no Open Babel needed");
  ic->add_option("--out", ia->out, "index file to write")->required();
  ic->add_option("--dtype", ia->dtype, "embedding storage: f32 or f16 (half the size)")->capture_default_str();
  ic->add_option("--batch", ia->batch, "molecules per embedding batch")->capture_default_str();
  ic->add_option("--threads", ia->threads, "CPU threads (0: default)")->capture_default_str();
  ic->callback([ia] { run_index(*ia); });

  auto ra = std::make_shared<RetrieveArgs>();
  auto* rc = app.add_subcommand("retrieve", "Rank library molecules for a 13C peak list (spectrum -> structure)");
  rc->add_option("--model", ra->model, "alignment checkpoint (the one the index was built with)")->required();
  rc->add_option("--peaks", ra->peaks, "13C peak list: one shift per line, optional S/D/T/Q ('-' = stdin)")->required();
  rc->add_option("--index", ra->index, "index file (larmor index)");
  rc->add_option("--library", ra->library, "SMILES or SD file, embedded now (Open Babel)");
  rc->add_option("--top", ra->top, "candidates to print")->capture_default_str();
  rc->add_option("--formula", ra->formula, "only molecules with this molecular formula (e.g. C9H10O2)");
  rc->add_option("--mass", ra->mass, "only molecules whose monoisotopic mass is within --mass-tol of this");
  rc->add_option("--mass-tol", ra->mass_tol, "mass window half-width (u)")->capture_default_str();
  rc->add_option("--format", ra->format, "table, csv or json")->capture_default_str();
  rc->add_option("--batch", ra->batch, "molecules per embedding batch (--library)")->capture_default_str();
  rc->add_flag("--timing", ra->timing, "print the time of each phase on stderr");
  rc->add_option("--threads", ra->threads, "CPU threads (0: default)")->capture_default_str();
  rc->add_option("--rerank-model", ra->rerank_model,
                 "shift-model checkpoint: re-order the top hits by predicted-spectrum fit + alignment score (Open Babel)");
  rc->add_option("--rerank-top", ra->rerank_top, "alignment hits to re-rank with --rerank-model")->capture_default_str();
  rc->add_option("--solvent", ra->solvent, "solvent fed to the --rerank-model (CDCl3, DMSO-d6, ..., unknown)")
      ->capture_default_str();
  rc->callback([ra] { run_retrieve(*ra); });
}

}  // namespace larmor::cli
