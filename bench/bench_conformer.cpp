// Conformer throughput on real molecules: 500 distinct SMILES spread evenly over the NMRShiftDB2 spectra
// table (../shared/data/nmrshiftdb2_json_pb/nmrshiftdb2_pb_spectra.tsv.xz, read through `xz -dc`; without
// it, 200 built-in molecules), turned into molblocks with explicit H outside the timed region.
//   BM_ConformersSerial/<max_steps>:   generate_conformer() on each molecule in this process.
//   BM_ConformersParallel/<workers>:   generate_conformers() with that many worker processes.
// items_per_second = molecules per second; counters: mean minimiser steps, share of molecules that needed
// UFF, a rebuild, or kept a stereo mismatch, and failures. One iteration each: a batch takes seconds.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "chem/ob_conformer.h"

namespace larmor::chem {
namespace {

std::vector<std::string> builtin_smiles() {
  const char* scaffolds[] = {"c1ccc(X)cc1",          "CC(X)C(=O)O",       "O[C@H]1CCCC[C@@H]1X", "C1CN(X)CCO1",
                             "O=C(NC1CC1)CX",        "COC(=O)/C=C/CX",    "c1ccc2ccccc2c1X",     "N[C@@H](CX)C(=O)O",
                             "FC(F)(F)c1ccc(OCX)cc1", "CC(=O)Oc1ccccc1C(=O)OCX"};
  const char* subs[] = {"C",   "CC",       "O",     "OC",    "N",        "F",           "Cl",
                        "Br",  "C(F)(F)F", "C#N",   "C(C)=O", "[N+](=O)[O-]", "S(C)(=O)=O", "P(=O)(OC)OC",
                        "c9ccccc9", "C9CC9", "OC(C)=O", "N(C)C", "[Se]C", "B(O)O"};
  std::vector<std::string> out;
  for (const char* s : scaffolds)
    for (const char* x : subs) {
      std::string smi = s;
      smi.replace(smi.find('X'), 1, x);
      out.push_back(smi);
    }
  return out;
}

// Every k-th distinct SMILES of the pb spectra table (SMILES is column 3), k chosen to give ~500.
std::vector<std::string> dataset_smiles(size_t want) {
  const std::string path = std::string(LARMOR_SHARED_DATA) + "/nmrshiftdb2_json_pb/nmrshiftdb2_pb_spectra.tsv.xz";
  std::vector<std::string> all;
  if (FILE* probe = std::fopen(path.c_str(), "rb")) {
    std::fclose(probe);
    if (FILE* pipe = ::popen(("xz -dc '" + path + "' 2>/dev/null").c_str(), "r")) {
      std::set<std::string> seen;
      std::string line;
      char buf[65536];
      bool header = true;
      while (std::fgets(buf, sizeof buf, pipe)) {
        line = buf;
        if (header) {
          header = false;
          continue;
        }
        std::istringstream fields(line);
        std::string id, key, smiles;
        if (std::getline(fields, id, '\t') && std::getline(fields, key, '\t') && std::getline(fields, smiles, '\t') &&
            seen.insert(smiles).second)
          all.push_back(smiles);
      }
      ::pclose(pipe);
    }
  }
  if (all.size() < want) return {};
  std::vector<std::string> out;
  const size_t step = all.size() / want;
  for (size_t i = 0; i < want; ++i) out.push_back(all[i * step]);
  return out;
}

struct Inputs {
  std::vector<std::string> molblocks;
  std::string source;
};

const Inputs& inputs() {
  static const Inputs in = [] {
    Inputs r;
    std::vector<std::string> smiles = dataset_smiles(500);
    r.source = smiles.empty() ? "built-in 200" : "NMRShiftDB2 pb table, 500";
    if (smiles.empty()) smiles = builtin_smiles();
    for (const std::string& s : smiles) {
      try {
        r.molblocks.push_back(smiles_to_molblock(s));
      } catch (const std::exception&) {  // a SMILES Open Babel cannot read: not a conformer question
      }
    }
    return r;
  }();
  return in;
}

void report(benchmark::State& state, const std::vector<ConformerResult>& results) {
  double steps = 0, uff = 0, rebuilt = 0, stereo_bad = 0, failed = 0;
  for (const ConformerResult& r : results) {
    steps += r.steps;
    uff += r.forcefield_used == "UFF";
    rebuilt += r.attempt > 0;
    stereo_bad += r.ok && !r.stereo_ok;
    failed += !r.ok;
  }
  const double n = static_cast<double>(results.size());
  state.counters["steps"] = steps / n;
  state.counters["uff%"] = 100 * uff / n;
  state.counters["rebuilt%"] = 100 * rebuilt / n;
  state.counters["stereo_bad%"] = 100 * stereo_bad / n;
  state.counters["failed"] = failed;
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * results.size()));
  state.SetLabel(inputs().source);
}

void BM_ConformersSerial(benchmark::State& state) {
  ConformerOptions opt;
  opt.max_steps = static_cast<int>(state.range(0));
  std::vector<ConformerResult> results;
  for (auto _ : state) {
    results.clear();
    for (const std::string& mb : inputs().molblocks) results.push_back(generate_conformer(mb, opt));
    benchmark::DoNotOptimize(results.data());
  }
  report(state, results);
}

void BM_ConformersParallel(benchmark::State& state) {
  ConformerOptions opt;
  std::vector<ConformerResult> results;
  for (auto _ : state) {
    results = generate_conformers(inputs().molblocks, opt, static_cast<int>(state.range(0)));
    benchmark::DoNotOptimize(results.data());
  }
  report(state, results);
}

BENCHMARK(BM_ConformersSerial)->Arg(100)->Arg(200)->Arg(500)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_ConformersParallel)->Arg(1)->Arg(2)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();

}  // namespace
}  // namespace larmor::chem
