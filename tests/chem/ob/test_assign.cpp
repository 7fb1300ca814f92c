// larmor::assign_by_prediction (chem/ob_assign.h): with the tiny shift model of tests/chem/shift_fixtures.h
// (trained for a few seconds on the hand-built chain dataset, shared with test_predict.cpp), peaks set to
// the model's own 13C predictions must map back to the carbons they were predicted for (equivalent carbons
// count as correct), whether listed once per class, once per carbon, shuffled or with multiplicities; the k
// best come in cost order; the CSV/JSON carry the documented columns with 0-based input-order indices; bad
// peak lists fail with the file's name.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "chem/ob_assign.h"
#include "chem/ob_molecule.h"
#include "chem/ob_predict.h"
#include "chem/shift_training.h"
#include "engine/error.h"
#include "tests/chem/peak_fixtures.h"
#include "tests/chem/shift_fixtures.h"
#include "tests/test_util.h"

using namespace larmor;
using namespace larmor::chem;

namespace {
using test::peak;

// The model's own 13C predictions for the molecule, per carbon class (class order of carbon_classes).
std::vector<CarbonClass> predicted_classes(ShiftPredictor& pred, const Molecule& mol, Solvent solvent) {
  NucleusSet c13{};
  c13[static_cast<size_t>(Nucleus::C13)] = true;
  const ShiftPrediction p = pred.predict(mol, solvent, c13);
  std::vector<CarbonClass> classes = carbon_classes(p.molecule);
  for (CarbonClass& c : classes)
    for (const AtomShift& a : p.atoms)
      if (a.atom == c.atoms[0]) c.predicted_ppm = a.shift_ppm;
  return classes;
}

// Every peak on a class whose predicted shift equals the peak (the class it was made from, or one the model
// gives exactly the same shift: those are indistinguishable and both correct).
void check_self_assignment(const AssignReport& r) {
  REQUIRE_FALSE(r.result.assignments.empty());
  const PeakAssignment& a = r.result.assignments[0];
  REQUIRE(a.matches.size() == r.peaks.size());
  for (const PeakMatch& m : a.matches) {
    CAPTURE(r.peaks[m.peak].shift);
    CHECK(r.classes[m.cls].predicted_ppm == doctest::Approx(r.peaks[m.peak].shift).epsilon(1e-12));
    CHECK(std::find(r.classes[m.cls].atoms.begin(), r.classes[m.cls].atoms.end(), m.atom) != r.classes[m.cls].atoms.end());
  }
  CHECK(a.cost == doctest::Approx(0.0).epsilon(1e-9));
}

}  // namespace

TEST_CASE("assign: peaks at the model's own predictions map back to their carbons") {
  ShiftPredictor pred(test::tiny_trained_model());
  const Molecule mol = molecule_from_smiles("CC(C)CCO", "isoamyl");  // methyls 0 and 2 are equivalent
  const std::vector<CarbonClass> classes = predicted_classes(pred, mol, Solvent::Unknown);
  REQUIRE(classes.size() == 4);
  CHECK(classes[0].atoms == std::vector<int32_t>{0, 2});
  // the classes' predictions are distinct, so "maps back" is a unique answer
  for (size_t i = 0; i < classes.size(); ++i)
    for (size_t j = 0; j < i; ++j) REQUIRE(std::fabs(classes[i].predicted_ppm - classes[j].predicted_ppm) > 1e-6);

  SUBCASE("one peak per class, shuffled") {
    std::vector<Peak> peaks;
    for (int c : {2, 0, 3, 1}) peaks.push_back(peak(classes[c].predicted_ppm));
    const AssignReport r = assign_by_prediction(pred, mol, peaks, Solvent::Unknown, AssignOptions{}, "self.txt");
    check_self_assignment(r);
    const PeakAssignment& a = r.result.assignments[0];
    std::vector<int32_t> got;
    for (const PeakMatch& m : a.matches) got.push_back(m.cls);
    CHECK(got == std::vector<int32_t>{2, 0, 3, 1});
    CHECK(r.method == "predict");
    CHECK(r.model == test::tiny_trained_model());
  }
  SUBCASE("one peak per carbon with multiplicities: the methyl pair takes two peaks on distinct atoms") {
    std::vector<Peak> peaks;
    for (const CarbonClass& c : predicted_classes(pred, mol, Solvent::CDCl3))
      for (size_t k = 0; k < c.atoms.size(); ++k) peaks.push_back(peak(c.predicted_ppm, static_cast<int8_t>(c.num_h)));
    AssignOptions o;
    o.k_best = 3;
    const AssignReport r = assign_by_prediction(pred, mol, peaks, Solvent::CDCl3, o, "per_carbon.txt");
    CHECK(r.result.multiplicity_used);
    check_self_assignment(r);
    std::set<int32_t> atoms;
    for (const PeakMatch& m : r.result.assignments[0].matches) atoms.insert(m.atom);
    CHECK(atoms == std::set<int32_t>{0, 1, 2, 3, 4});  // every carbon once
    // the k best: with the multiplicities only the two T peaks (atoms 3 and 4) can swap (swapping the
    // identical Q peaks of the methyl pair is no new answer), so 2 of the 3 requested exist
    REQUIRE(r.result.assignments.size() == 2);
    CHECK(r.result.assignments[1].objective > r.result.assignments[0].objective);
    const PeakAssignment& alt = r.result.assignments[1];
    for (size_t i = 0; i < alt.matches.size(); ++i) {
      const bool triplet = r.peaks[i].mult == 2;
      CHECK((alt.matches[i].cls != r.result.assignments[0].matches[i].cls) == triplet);
    }

    // CSV: the documented columns, one row per peak per rank, 0-based input-order indices
    std::istringstream csv(format_assign_csv(r));
    std::string line;
    std::getline(csv, line);
    CHECK(line == "peak_ppm,multiplicity,atom_index,equivalent_atoms,predicted_ppm,error_ppm,confidence,rank,total_cost");
    int rows = 0;
    bool saw_pair = false;
    while (std::getline(csv, line)) {
      ++rows;
      std::vector<std::string> f;
      std::stringstream ss(line);
      std::string x;
      while (std::getline(ss, x, ',')) f.push_back(x);
      REQUIRE(f.size() == 9);
      const int atom = std::stoi(f[2]);
      CHECK(atom >= 0);
      CHECK(atom <= 4);
      CHECK(f[1].size() == 1);  // S/D/T/Q
      saw_pair = saw_pair || f[3] == "0;2";
      const double conf = std::stod(f[6]);
      CHECK(conf >= 0.0);
      CHECK(conf <= 1.0);
    }
    CHECK(rows == 10);
    CHECK(saw_pair);
    const std::string js = format_assign_json(r);
    CHECK(js.find("\"method\":\"predict\"") != std::string::npos);
    CHECK(js.find("\"equivalent_atoms\":[0,2]") != std::string::npos);
    CHECK(js.find("\"multiplicity_used\":true") != std::string::npos);
    CHECK(js.find("\"solvent\":\"CDCl3\"") != std::string::npos);
    const std::string table = format_assign_table(r);
    CHECK(table.find("2 best assignments") != std::string::npos);
  }
  SUBCASE("an alternative method's cost matrix goes through the same assignment") {
    // the identity-preferring matrix: peak i costs 0 on class i, 1 elsewhere
    std::vector<Peak> peaks;
    for (const CarbonClass& c : classes) peaks.push_back(peak(c.predicted_ppm));
    std::vector<double> cost(peaks.size() * classes.size(), 1.0);
    for (size_t i = 0; i < peaks.size(); ++i) cost[i * classes.size() + i] = 0.0;
    std::vector<CarbonClass> no_shifts = carbon_classes(mol);
    const AssignReport r = assign_with_costs(mol, peaks, no_shifts, cost, AssignOptions{}, "test-scores");
    for (const PeakMatch& m : r.result.assignments[0].matches) CHECK(m.cls == m.peak);
    const std::string csv = format_assign_csv(r);
    CHECK(csv.find(",0;2,,,") != std::string::npos);  // no predicted shift, no error
  }
}

TEST_CASE("assign: bad peak lists and models fail clearly") {
  ShiftPredictor pred(test::tiny_trained_model());
  const Molecule mol = molecule_from_smiles("CCO", "ethanol");
  CHECK_THROWS_WITH_AS(
      assign_by_prediction(pred, mol, {peak(10), peak(20), peak(30)}, Solvent::Unknown, AssignOptions{}, "three.txt"),
      doctest::Contains("three.txt: 3 peaks but the molecule has only 2 carbons"), Error);
  CHECK_THROWS_WITH_AS(assign_by_prediction(pred, mol, {}, Solvent::Unknown, AssignOptions{}, "empty.txt"),
                       doctest::Contains("empty.txt"), Error);
  CHECK_THROWS_WITH_AS(assign_by_prediction(pred, molecule_from_smiles("O", "water"), {peak(10)}, Solvent::Unknown,
                                            AssignOptions{}, "w.txt"),
                       doctest::Contains("no carbon"), Error);
  // an impossible multiplicity falls back with a warning
  const AssignReport r =
      assign_by_prediction(pred, mol, {peak(18.0, 0), peak(58.0, 0)}, Solvent::Unknown, AssignOptions{}, "mult.txt");
  CHECK_FALSE(r.result.multiplicity_used);
  REQUIRE_FALSE(r.warnings.empty());
  CHECK(r.warnings.back().find("multiplicities ignored") != std::string::npos);
}
