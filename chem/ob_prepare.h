// `larmor prepare`: NMRShiftDB2-derived sources -> one prepared dataset (chem/dataset.h).
//
// Pipeline, one pass per source, then the expensive work on everything kept:
//   1. NMR8K (and the 19F SD file): SD records -> experimental spectra (predicted ones excluded) -> the
//      molecule from its molblock (atom order = SD order, so atomIdx maps through Molecule::input_index)
//      -> assigned shifts checked against the atom's element (1H: the heavy atom must carry H) -> median
//      over repeated spectra.
//   2. pb spectra table: unassigned peak sets per nmrshiftdb2 ID (predicted excluded); molecules already
//      read from an SD source get the peak sets added, others are built from the SMILES.
//   3. 31P single-P table: the one 31P shift is assigned to the molecule's single P atom; literature records
//      (nmrbank CSV): free-text 1H/13C peak lists -> unassigned peak sets (1H expanded by integral).
//   4. 3-D conformers for every kept molecule (chem/ob_conformer.h, worker processes on all cores).
//   5. The split (chem/split.h: InChIKey first block, seeded 80/10/10) is the same pure function for every
//      source, so no test molecule ever appears in training in assigned or unassigned form.
// Every rejected record or spectrum is counted under its reason and listed (source, record, reason).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "chem/dataset.h"

namespace larmor::chem {

struct PrepareOptions {
  std::string data_dir = "../shared/data";
  std::vector<std::string> sources = {"nmr8k", "pb"};  // nmr8k, pb, f19, p31, literature
  std::vector<Nucleus> nuclei = {Nucleus::C13, Nucleus::H1};
  uint64_t seed = 1;           // split seed (conformer seed too)
  int workers = 0;             // conformer worker processes; <= 0: all cores
  int conformer_steps = 200;   // MMFF94 minimisation steps per molecule
  int64_t limit = 0;           // > 0: at most this many molecules per source (quick runs, tests)
};

struct PrepareReport {
  std::map<std::string, int64_t> counts;      // "<source>: records read", "<source>: molecules kept", ...
  std::map<std::string, int64_t> exclusions;  // reason -> count
  std::vector<std::string> problems;          // "<source> <record>: <reason>", one per rejected item
  double seconds_parse = 0, seconds_conformers = 0, seconds_total = 0;
  int64_t molecules = 0;
};

struct PrepareProgress {
  std::function<void(const std::string& stage, int64_t total)> begin;
  std::function<void(int64_t done)> update;
  std::function<void()> end;
};

// Builds the dataset; throws larmor::Error only for problems with the inputs as a whole (missing file,
// unknown source); per-record problems go to the report.
Dataset prepare_dataset(const PrepareOptions& options, PrepareReport& report, const PrepareProgress& progress = {});

// The inputs' identity for the cache: paths, sizes and modification times of the source files plus the
// options that change the output. Stored in Dataset::info["inputs"].
std::string prepare_inputs_signature(const PrepareOptions& options);

}  // namespace larmor::chem
