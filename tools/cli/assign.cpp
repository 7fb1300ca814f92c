// `larmor assign`: which carbon each 13C peak of a spectrum belongs to. One molecule (--smiles or a one-record
// --sdf) and a peak list (chem/peak_list.h format: one shift per line, optional S/D/T/Q multiplicity) in; the
// assignment with per-peak confidences, and with --k N the N best assignments, out as a table, CSV or JSON.
// Thin on purpose: methods produce a peaks x carbon-class cost matrix and share the assignment and the output
// formats (chem/ob_assign.h); `--method predict` is the shift predictor + the optimal assignment, `--method
// align` the alignment model's peak-carbon scores (-log softmax over classes) + the same assignment, `--method
// both` the sum of the two costs (ppm + --combine-weight ppm per nat x nats). The peak
// list is read and checked before the model is loaded, so a bad list fails fast with its file and line.
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "engine/error.h"
#include "tools/cli/commands.h"

#ifdef LARMOR_WITH_OPENBABEL
#include "chem/align_training.h"
#include "chem/assignment.h"
#include "chem/ob_assign.h"
#include "chem/ob_molecule.h"
#include "chem/peak_list.h"
#endif

namespace larmor::cli {
namespace {

struct AssignArgs {
  std::string smiles, sdf, peaks, method = "predict", model, solvent = "unknown", format = "table";
  int k = 1;
  double temperature = 0;  // 0: the method's default (predict, both: 2 ppm; align: 1 nat)
  double combine_weight = 1.0;
  std::string align_model;  // --method both: the alignment model (--model names the shift model)
  bool no_multiplicity = false;
};

#ifdef LARMOR_WITH_OPENBABEL
constexpr const char* kDefaultShiftModel = "models/larmor-shift-small.safetensors";
constexpr const char* kDefaultAlignModel = "models/larmor-align.safetensors";

chem::Molecule read_molecule(const AssignArgs& a) {
  if (!a.smiles.empty()) return chem::molecule_from_smiles(a.smiles, "smiles");
  chem::MoleculeReader reader(a.sdf, chem::MoleculeFormat::Sdf);
  chem::MoleculeRecord rec;
  if (!reader.next(rec)) throw Error("assign: " + a.sdf + ": no record");
  if (!rec.ok()) throw Error("assign: " + rec.error);
  chem::Molecule mol = std::move(*rec.molecule);
  chem::MoleculeRecord more;
  if (reader.next(more)) throw Error("assign: " + a.sdf + " holds more than one record; give one molecule");
  return mol;
}

void run_assign(const AssignArgs& a) {
  const int sources = static_cast<int>(!a.smiles.empty()) + static_cast<int>(!a.sdf.empty());
  if (sources != 1) throw Error("assign: give exactly one of --smiles, --sdf");
  if (a.format != "table" && a.format != "csv" && a.format != "json")
    throw Error("assign: --format must be table, csv or json");
  if (a.method != "predict" && a.method != "align" && a.method != "both")
    throw Error("assign: --method must be predict, align or both");
  if (!(a.combine_weight >= 0) || std::isinf(a.combine_weight))
    throw Error("assign: --combine-weight must be finite and >= 0");
  if (a.k < 1 || a.k > 1000) throw Error("assign: --k must be between 1 and 1000");
  const chem::Solvent solvent = chem::solvent_flag_or_throw(a.solvent, "assign");
  const std::vector<chem::Peak> peaks = chem::read_peak_list_file(a.peaks);
  const chem::Molecule mol = read_molecule(a);
  {
    int32_t carbons = 0;
    for (const chem::CarbonClass& c : chem::carbon_classes(mol)) carbons += static_cast<int32_t>(c.atoms.size());
    chem::validate_peak_list(peaks, carbons, a.peaks);
  }
  chem::AssignOptions options;
  options.k_best = a.k;
  if (a.temperature < 0 || !std::isfinite(a.temperature)) throw Error("assign: --temperature must be positive");
  options.temperature = a.temperature > 0 ? a.temperature : (a.method == "align" ? 1.0 : 2.0);  // both: ppm
  options.use_multiplicity = !a.no_multiplicity;

  // A method turns (molecule, peaks) into a report; the assignment and the formats are shared.
  AssignReport report;
  if (a.method == "predict") {
    ShiftPredictor predictor(a.model.empty() ? kDefaultShiftModel : a.model);
    report = assign_by_prediction(predictor, mol, peaks, solvent, options, a.peaks);
  } else if (a.method == "both") {
    ShiftPredictor predictor(a.model.empty() ? kDefaultShiftModel : a.model);
    const std::string path = a.align_model.empty() ? kDefaultAlignModel : a.align_model;
    chem::LoadedAlignModel loaded = chem::load_align_model(path);
    report = assign_by_both(predictor, *loaded.model, mol, peaks, solvent, options, a.combine_weight, a.peaks, path);
  } else {
    const std::string path = a.model.empty() ? kDefaultAlignModel : a.model;
    chem::LoadedAlignModel loaded = chem::load_align_model(path);
    report = assign_by_alignment(*loaded.model, mol, peaks, options, a.peaks, path);
    report.solvent = solvent;  // not read by the alignment model; shown as given
  }

  if (a.format != "table")  // the table prints them itself
    for (const std::string& w : report.warnings) std::fprintf(stderr, "larmor assign: warning: %s\n", w.c_str());
  std::string text;
  if (a.format == "table") text = format_assign_table(report);
  else if (a.format == "csv") text = format_assign_csv(report);
  else text = format_assign_json(report) + "\n";
  std::fputs(text.c_str(), stdout);
}
#endif

}  // namespace

void add_assign_command(CLI::App& app) {
  auto a = std::make_shared<AssignArgs>();
  auto* cmd = app.add_subcommand("assign", "Assign a 13C peak list to the carbons of a molecule");
  cmd->add_option("--smiles", a->smiles, "the molecule as SMILES");
  cmd->add_option("--sdf", a->sdf, "the molecule as a one-record SD file");
  cmd->add_option("--peaks", a->peaks, "13C peak list: one shift per line, optional S/D/T/Q ('-' = stdin)")->required();
  cmd->add_option("--method", a->method,
                  "predict (shift model + optimal assignment), align (alignment model + optimal assignment) or both "
                  "(the sum of the two costs)")
      ->capture_default_str();
  cmd->add_option("--model", a->model,
                  "checkpoint (default: models/larmor-shift-small.safetensors for predict and both, "
                  "models/larmor-align.safetensors for align)");
  cmd->add_option("--align-model", a->align_model,
                  "--method both: the alignment model (default: models/larmor-align.safetensors)");
  cmd->add_option("--combine-weight", a->combine_weight,
                  "--method both: ppm per nat of alignment cost (1 was chosen on the valid split)")
      ->capture_default_str();
  cmd->add_option("--solvent", a->solvent, "CDCl3, DMSO-d6, CD3OD, acetone-d6, D2O, C6D6 or unknown")
      ->capture_default_str();
  cmd->add_option("--k", a->k, "also list the k best assignments (k >= 1)")->capture_default_str();
  cmd->add_option("--temperature", a->temperature,
                  "confidence scale in cost units (default: predict 2 ppm, about its MAE; align 1 nat)");
  cmd->add_flag("--no-multiplicity", a->no_multiplicity, "ignore the peaks' multiplicities");
  cmd->add_option("--format", a->format, "table, csv or json")->capture_default_str();
  cmd->callback([a] {
#ifdef LARMOR_WITH_OPENBABEL
    run_assign(*a);
#else
    throw larmor::Error("assign: this larmor was built without Open Babel 3 (install libopenbabel-dev and rebuild)");
#endif
  });
}

}  // namespace larmor::cli
