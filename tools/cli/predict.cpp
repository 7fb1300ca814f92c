// `larmor predict`: shifts of one molecule (--smiles), an SD file (--sdf) or a file of many molecules
// (--input, SMILES or SDF, '-' = stdin) with a trained shift model. A thin wrapper over larmor::ShiftPredictor
// (chem/ob_predict.h), which also owns the output formats, so this file only parses flags, loops over the
// records and decides the exit code: a bad record is reported on stderr with its record number and skipped;
// the command fails only when every record failed (or on bad arguments / a missing model).
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "engine/error.h"
#include "tools/cli/commands.h"

#ifdef LARMOR_WITH_OPENBABEL
#include "chem/ob_molecule.h"
#include "chem/ob_predict.h"
#endif

namespace larmor::cli {
namespace {

struct PredictArgs {
  std::string model, smiles, sdf, input, nucleus = "both", solvent = "unknown", format = "table";
};

#ifdef LARMOR_WITH_OPENBABEL
chem::Solvent solvent_arg(const std::string& s) {
  if (s.empty() || s == "unknown" || s == "none") return chem::Solvent::Unknown;
  const chem::Solvent v = chem::parse_solvent(s);
  if (v == chem::Solvent::Unknown || (v == chem::Solvent::Other && s != "other" && s != "Other")) throw Error("predict: unknown solvent '" + s + "' (CDCl3, DMSO-d6, CD3OD, ...)");
  return v;
}

void run_predict(const PredictArgs& a) {
  const int sources = !a.smiles.empty() + !a.sdf.empty() + !a.input.empty();
  if (sources != 1) throw Error("predict: give exactly one of --smiles, --sdf, --input");
  if (a.format != "table" && a.format != "csv" && a.format != "json" && a.format != "sdf")
    throw Error("predict: --format must be table, csv, json or sdf");
  const NucleusSet nuclei = parse_nucleus_set(a.nucleus);
  const chem::Solvent solvent = solvent_arg(a.solvent);
  ShiftPredictor predictor(a.model);
  const NucleusSet heads = predictor.available_nuclei();
  for (int n = 0; n < chem::kNumNuclei; ++n)
    if (nuclei[n] && !heads[n])
      throw Error(std::string("predict: the model '") + a.model + "' has no " +
                  chem::nucleus_name(static_cast<chem::Nucleus>(n)) + " head");

  std::unique_ptr<chem::MoleculeReader> reader;
  if (!a.smiles.empty())
    reader = std::make_unique<chem::MoleculeReader>(
        chem::MoleculeReader::from_string("smiles", a.smiles + "\n", chem::MoleculeFormat::Smiles));
  else if (!a.sdf.empty())
    reader = std::make_unique<chem::MoleculeReader>(a.sdf, chem::MoleculeFormat::Sdf);
  else if (a.input == "-")
    reader = std::make_unique<chem::MoleculeReader>(chem::MoleculeReader::from_stream("stdin", std::cin));
  else
    reader = std::make_unique<chem::MoleculeReader>(a.input);

  int64_t ok = 0, failed = 0;
  bool first_json = true;
  if (a.format == "csv") std::fputs(csv_header().c_str(), stdout);
  if (a.format == "json") std::fputs("[\n", stdout);
  chem::MoleculeRecord rec;
  while (reader->next(rec)) {
    std::string text;
    try {
      if (!rec.ok()) throw Error(rec.error);
      const ShiftPrediction p = predictor.predict(*rec.molecule, solvent, nuclei);
      if (a.format == "table") text = format_table(p) + "\n";
      else if (a.format == "csv") text = format_csv_rows(p);
      else if (a.format == "sdf") text = format_sdf(p);
      else text = std::string(first_json ? "" : ",\n") + format_json(p);
    } catch (const std::exception& e) {
      ++failed;
      std::fprintf(stderr, "larmor predict: record %lld skipped: %s\n", static_cast<long long>(rec.number), e.what());
      continue;
    }
    first_json = first_json && a.format != "json";
    ++ok;
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
  }
  if (a.format == "json") std::fputs("\n]\n", stdout);
  if (ok == 0)
    throw Error("predict: no molecule predicted (" + std::to_string(failed) + " record" + (failed == 1 ? "" : "s") +
                " failed)");
  if (failed > 0)
    std::fprintf(stderr, "larmor predict: %lld of %lld records failed\n", static_cast<long long>(failed),
                 static_cast<long long>(ok + failed));
}
#endif

}  // namespace

void add_predict_command(CLI::App& app) {
  auto a = std::make_shared<PredictArgs>();
  auto* cmd = app.add_subcommand("predict", "Predict NMR shifts with a trained shift model");
  cmd->add_option("--model", a->model, "shift-model checkpoint (.safetensors)")->required();
  cmd->add_option("--smiles", a->smiles, "one molecule as SMILES");
  cmd->add_option("--sdf", a->sdf, "an SD file (one or many records)");
  cmd->add_option("--input", a->input, "a SMILES or SD file of many molecules ('-' = stdin)");
  cmd->add_option("--nucleus", a->nucleus, "13C, 1H, both, 19F, 31P, all or a comma list")->capture_default_str();
  cmd->add_option("--solvent", a->solvent, "CDCl3, DMSO-d6, CD3OD, acetone-d6, D2O, C6D6 or unknown")
      ->capture_default_str();
  cmd->add_option("--format", a->format, "table, csv, json or sdf")->capture_default_str();
  cmd->callback([a] {
#ifdef LARMOR_WITH_OPENBABEL
    run_predict(*a);
#else
    throw larmor::Error("predict: this larmor was built without Open Babel 3 (install libopenbabel-dev and rebuild)");
#endif
  });
}

}  // namespace larmor::cli
