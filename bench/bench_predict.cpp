// `larmor predict` latency on drug-sized molecules, the issue's "under 2 s on this machine including the
// conformer" target. The shipped model (models/larmor-shift-small.safetensors) is required; without it the
// benchmarks report an error and time nothing.
//   BM_PredictSmiles/<i>:  ShiftPredictor::predict_smiles in this process: SMILES parsing, H addition, the
//                          MMFF94 conformer, featurisation, the model forward, symmetry averaging. The model is
//                          loaded once, outside the timed region (an embedding program does the same).
//   BM_PredictCli/<i>:     the whole command a user types, `larmor predict --smiles ... --format csv`, as a
//                          child process: process start, Open Babel start, model load, then the above.
// <i> indexes kMolecules (name and heavy-atom count are in the label).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "chem/ob_predict.h"

namespace {

struct BenchMolecule {
  const char* name;
  const char* smiles;
};
// Drug-sized molecules (heavy atoms / atoms with H): ibuprofen 15/33, caffeine 14/24, imatinib 37/68,
// atorvastatin 41/74.
constexpr BenchMolecule kMolecules[] = {
    {"ibuprofen", "CC(C)Cc1ccc(cc1)C(C)C(=O)O"},
    {"caffeine", "Cn1cnc2c1c(=O)n(C)c(=O)n2C"},
    {"imatinib", "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1"},
    {"atorvastatin", "CC(C)c1c(C(=O)Nc2ccccc2)c(-c2ccccc2)c(-c2ccc(F)cc2)n1CC[C@@H](O)C[C@@H](O)CC(=O)O"},
};
const std::string kModel = std::string(LARMOR_SOURCE_DIR) + "/models/larmor-shift-small.safetensors";
const std::string kCli = std::string(LARMOR_BINARY_DIR) + "/tools/larmor";

bool model_present(benchmark::State& state) {
  if (FILE* f = std::fopen(kModel.c_str(), "rb")) {
    std::fclose(f);
    return true;
  }
  state.SkipWithError(("no shipped model at " + kModel).c_str());
  return false;
}

void BM_PredictSmiles(benchmark::State& state) {
  if (!model_present(state)) return;
  const BenchMolecule& m = kMolecules[state.range(0)];
  larmor::ShiftPredictor predictor(kModel);
  size_t atoms = 0;
  for (auto _ : state) {
    const larmor::ShiftPrediction p = predictor.predict_smiles(m.smiles);
    atoms = p.molecule.atoms.size();
    benchmark::DoNotOptimize(p.atoms.data());
  }
  state.SetLabel(std::string(m.name) + ", " + std::to_string(atoms) + " atoms with H");
}
BENCHMARK(BM_PredictSmiles)->DenseRange(0, 3)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_PredictCli(benchmark::State& state) {
  if (!model_present(state)) return;
  const BenchMolecule& m = kMolecules[state.range(0)];
  const std::string cmd = "'" + kCli + "' predict --model '" + kModel + "' --smiles '" + m.smiles +
                          "' --format csv > /dev/null";
  for (auto _ : state) {
    if (std::system(cmd.c_str()) != 0) {
      state.SkipWithError(("failed: " + cmd).c_str());
      return;
    }
  }
  state.SetLabel(m.name);
}
BENCHMARK(BM_PredictCli)->DenseRange(0, 3)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);

}  // namespace
