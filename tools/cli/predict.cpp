// `larmor predict`: shifts of one molecule (--smiles), an SD file (--sdf) or a file of many molecules
// (--input, SMILES or SDF, '-' = stdin) with a trained shift model. A thin wrapper over larmor::ShiftPredictor
// (chem/ob_predict.h), which also owns the output formats, so this file only parses flags, loops over the
// records and decides the exit code: a bad record is reported on stderr with its record number and skipped;
// the command fails only when every record failed (or on bad arguments / a missing model). --svg PATH writes
// stick spectra; the file names only grow the parts needed to tell them apart (the nucleus when several
// are requested, the record number when the input holds several records), so the first record's figures
// are held until the reader shows whether a second record exists.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/error.h"
#include "tools/cli/commands.h"

#ifdef LARMOR_WITH_OPENBABEL
#include "chem/ob_molecule.h"
#include "chem/ob_predict.h"
#endif

namespace larmor::cli {
namespace {

struct PredictArgs {
  std::string model, smiles, sdf, input, nucleus = "both", solvent = "unknown", format = "table", svg;
};

#ifdef LARMOR_WITH_OPENBABEL
// One stick spectrum waiting to be written: which record and nucleus, and the SVG text.
struct PendingSvg {
  int64_t record = 0;
  chem::Nucleus nucleus = chem::Nucleus::C13;
  std::string text;
};

// spectrum.svg -> spectrum_3_13C.svg: the record number (multi-record input) and the nucleus (several
// nuclei) inserted before the extension.
std::string svg_path(const std::string& base, int64_t record, bool number_records, chem::Nucleus nucleus,
                     bool name_nucleus) {
  const std::filesystem::path p(base);
  std::string stem = p.stem().string();
  if (number_records) stem += "_" + std::to_string(record);
  if (name_nucleus) stem += std::string("_") + chem::nucleus_name(nucleus);
  return (p.parent_path() / (stem + p.extension().string())).string();
}

void write_svg(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  if (!f) throw Error("predict: cannot write SVG '" + path + "'");
  f << text;
  f.close();
  if (!f) throw Error("predict: error writing SVG '" + path + "'");
  std::fprintf(stderr, "larmor predict: wrote %s\n", path.c_str());
}

void run_predict(const PredictArgs& a) {
  const int sources = !a.smiles.empty() + !a.sdf.empty() + !a.input.empty();
  if (sources != 1) throw Error("predict: give exactly one of --smiles, --sdf, --input");
  if (a.format != "table" && a.format != "csv" && a.format != "json" && a.format != "sdf")
    throw Error("predict: --format must be table, csv, json or sdf");
  const NucleusSet nuclei = parse_nucleus_set(a.nucleus);
  const chem::Solvent solvent = chem::solvent_flag_or_throw(a.solvent, "predict");
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

  int nuclei_requested = 0;
  for (bool b : nuclei) nuclei_requested += b;
  std::vector<PendingSvg> pending;  // the first record's spectra until a second record shows up
  int64_t records = 0;
  auto flush_svgs = [&](bool number_records) {
    for (const PendingSvg& s : pending)
      write_svg(svg_path(a.svg, s.record, number_records, s.nucleus, nuclei_requested > 1), s.text);
    pending.clear();
  };

  int64_t ok = 0, failed = 0;
  bool first_json = true;
  if (a.format == "csv") std::fputs(csv_header().c_str(), stdout);
  if (a.format == "json") std::fputs("[\n", stdout);
  chem::MoleculeRecord rec;
  while (reader->next(rec)) {
    if (++records == 2) flush_svgs(true);
    std::string text;
    std::vector<PendingSvg> svgs;
    try {
      if (!rec.ok()) throw Error(rec.error);
      const ShiftPrediction p = predictor.predict(*rec.molecule, solvent, nuclei);
      if (!a.svg.empty())
        for (int n = 0; n < chem::kNumNuclei; ++n)
          if (nuclei[n]) {
            const auto nuc = static_cast<chem::Nucleus>(n);
            svgs.push_back({rec.number, nuc, format_svg(p, nuc)});
          }
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
    for (PendingSvg& s : svgs) pending.push_back(std::move(s));
    if (records > 1) flush_svgs(true);
  }
  flush_svgs(records > 1);
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
  cmd->add_option("--svg", a->svg,
                  "write the predicted stick spectrum as SVG to this path (spectrum.svg; with several nuclei "
                  "spectrum_13C.svg, ...; with several records spectrum_3_13C.svg, ...)");
  cmd->callback([a] {
#ifdef LARMOR_WITH_OPENBABEL
    run_predict(*a);
#else
    throw larmor::Error("predict: this larmor was built without Open Babel 3 (install libopenbabel-dev and rebuild)");
#endif
  });
}

}  // namespace larmor::cli
