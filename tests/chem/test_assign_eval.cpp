// The optimal-assignment rows of `larmor eval align` (chem/align_training.h): on hand-made score blocks the
// optimal assignment over symmetry classes gives each carbon class as many peaks as it has carbons, so it
// beats the row argmax exactly where the argmax picks one carbon twice, lets symmetric carbons share peaks,
// and obeys multiplicities; with a tiny trained shift model, peaks that ARE the model's own predictions
// (computed here one molecule at a time, independently of the evaluation's padded batches) are assigned
// 100 % right, and two swapped peaks cost exactly those two. Hand-built fixtures, so the cases run fast.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "chem/align_training.h"
#include "chem/features.h"
#include "engine/error.h"
#include "tests/chem/shift_fixtures.h"

using namespace larmor;
using namespace larmor::chem;

namespace {

// The shift model's 13C prediction (ppm) of every atom of `mol`: one molecule, no padding.
std::vector<double> own_predictions(LoadedShiftModel& m, const DatasetEntry& e) {
  const MoleculeFeatures f = featurize(e.mol);
  const int64_t N = static_cast<int64_t>(f.tokens.size());
  ShiftBatch b;
  b.tokens = Tensor::from_vector(f.tokens, {1, N});
  b.coords = Tensor::from_vector(f.coords, {1, N, 3});
  b.key_mask = Tensor::from_vector(std::vector<int32_t>(static_cast<size_t>(N), 1), {1, N});
  const bool solvent = m.model->config().solvent_conditioning && m.data_options.use_solvent;
  b.solvent = Tensor::from_vector(std::vector<int32_t>{solvent ? static_cast<int32_t>(e.solvent) : 0}, {1});
  b.entries = {0};
  NoGradGuard ng;
  m.model->eval();
  const std::vector<float> z = m.model->forward(b).shifts.to_vector<float>();  // (1, N, 4)
  std::vector<double> out;
  for (int64_t a = 0; a < N - 2; ++a) out.push_back(m.standardizer.to_ppm(1, z[static_cast<size_t>((a + 1) * 4 + 1)]));
  return out;
}

// Sets every assigned 13C shift of `e` to the model's own prediction; carbons of one symmetry class get
// their mean (the prepared data holds one value per class).
void shifts_from_model(LoadedShiftModel& m, DatasetEntry& e) {
  const std::vector<double> pred = own_predictions(m, e);
  for (AssignedShift& a : e.assigned) {
    if (a.nucleus != Nucleus::C13) continue;
    double sum = 0;
    int count = 0;
    for (int32_t i = 0; i < e.mol.num_atoms(); ++i)
      if (e.mol.atoms[i].element == 6 && e.mol.atoms[i].symmetry_class == e.mol.atoms[a.atom].symmetry_class) {
        sum += pred[i];
        ++count;
      }
    a.shift = static_cast<float>(sum / count);
  }
}

}  // namespace

TEST_CASE("optimal assignment on align scores: one peak per carbon where the argmax doubles up") {
  // four carbons in four classes; peaks are the carbons' own shifts; multiplicity unknown (class 4)
  const std::vector<float> ppm = {20, 30, 40, 50};
  const std::vector<int32_t> cls = {0, 1, 2, 3}, unknown = {4, 4, 4, 4};
  const std::vector<double> scores = {5, 1, 0, 0,     // peak 0
                                      4, 3, 0, 0,     // peak 1: argmax carbon 0 again
                                      0, 0, 3, 0.5,   // peak 2
                                      0, 0, 2.5, 2};  // peak 3: argmax carbon 2 again
  const std::vector<int32_t> argmax = assign_peaks(scores, 4, 4, false);
  CHECK(argmax == std::vector<int32_t>{0, 0, 2, 2});
  CHECK(correct_assignments(argmax, ppm, cls, ppm, cls) == 2);
  // the best permutation by summed score: diagonal 5 + 3 + 3 + 2 = 13 beats every alternative
  // (swap 0/1: 1 + 4 = 5 < 8; swap 2/3: 0.5 + 2.5 = 3 < 5)
  const std::vector<int32_t> optimal = assign_peaks_optimal_by_scores(scores, ppm, unknown, cls, unknown);
  CHECK(optimal == std::vector<int32_t>{0, 1, 2, 3});
  CHECK(correct_assignments(optimal, ppm, cls, ppm, cls) == 4);

  // symmetric carbons 0 and 1 (class 7, one shift) take two peaks; the class score is the best carbon's
  const std::vector<float> sym_ppm = {20, 20, 40};
  const std::vector<int32_t> sym_cls = {7, 7, 2}, sym_mult = {4, 4, 4};
  const std::vector<double> sym_scores = {5, 4, 0,     // peak 0: class 7 by 5
                                          4, 4.5, 0,   // peak 1: class 7 by 4.5
                                          3, 2.9, 1};  // peak 2: class 7 by 2 only: it yields the slot
  const std::vector<int32_t> sym_argmax = assign_peaks(sym_scores, 3, 3, false);
  CHECK(correct_assignments(sym_argmax, sym_ppm, sym_cls, sym_ppm, sym_cls) == 2);  // peak 2 -> carbon 0
  const std::vector<int32_t> sym_opt = assign_peaks_optimal_by_scores(sym_scores, sym_ppm, sym_mult, sym_cls, sym_mult);
  CHECK(sym_opt == std::vector<int32_t>{0, 0, 2});  // a class's first carbon stands for the class
  CHECK(correct_assignments(sym_opt, sym_ppm, sym_cls, sym_ppm, sym_cls) == 3);

  // multiplicity is a hard constraint: the scores prefer the swap, the CH3 / C multiplicities forbid it
  const std::vector<float> m_ppm = {20, 170};
  const std::vector<int32_t> m_cls = {0, 1}, m_mult = {3, 0}, m_unknown = {4, 4};
  const std::vector<double> m_scores = {0, 3,   // peak 0 (CH3) scores the C=O carbon higher
                                        2, 0};  // peak 1 (C) the methyl
  CHECK(assign_peaks_optimal_by_scores(m_scores, m_ppm, m_unknown, m_cls, m_unknown) == std::vector<int32_t>{1, 0});
  CHECK(assign_peaks_optimal_by_scores(m_scores, m_ppm, m_mult, m_cls, m_mult) == std::vector<int32_t>{0, 1});

  CHECK_THROWS_AS(assign_peaks_optimal_by_scores(scores, ppm, unknown, cls, {4, 4}), Error);
  CHECK_THROWS_AS(assign_peaks_optimal_by_scores(std::vector<double>(12, 0.0), ppm, unknown, cls, unknown), Error);
}

TEST_CASE("optimal assignment on predicted shifts: L1 over class means, one peak per carbon") {
  // nearest prediction sends both peaks to carbon 0 (31 ppm); the optimum uses both carbons
  const std::vector<float> ppm = {30, 32};
  const std::vector<int32_t> cls = {0, 1}, mult = {4, 4};
  CHECK(assign_peaks_optimal_by_shifts({31, 35}, ppm, mult, cls, mult) == std::vector<int32_t>{0, 1});
  // symmetric carbons 0 and 2 predicted 12 and 28: their class is predicted at the mean, 20, and takes both
  // 20 ppm peaks (cost 0 + 0); carbon 1 at 27 ppm takes the 26 ppm peak (total 1; the other way round 13)
  const std::vector<float> sym_ppm = {20, 26, 20};
  const std::vector<int32_t> sym_cls = {5, 6, 5}, sym_mult = {2, 2, 2};
  const std::vector<int32_t> choice = assign_peaks_optimal_by_shifts({12, 27, 28}, sym_ppm, sym_mult, sym_cls, sym_mult);
  CHECK(choice == std::vector<int32_t>{0, 1, 0});
  CHECK(correct_assignments(choice, sym_ppm, sym_cls, sym_ppm, sym_cls) == 3);
  CHECK_THROWS_AS(assign_peaks_optimal_by_shifts({31}, ppm, mult, cls, mult), Error);
}

TEST_CASE("eval align: the shift predictor + optimal row is 100% when the peaks are the model's predictions") {
  LoadedShiftModel shift = load_shift_model(test::tiny_trained_model());
  Dataset ds = test::chain_dataset();
  for (DatasetEntry& e : ds.entries) e.split = Split::Train;
  // test molecules: a 5-carbon chain with its two CH3 ends made one symmetry class, a 6-carbon chain with
  // an O, and a 4-carbon chain without coordinates (no prediction possible: left out and counted)
  DatasetEntry sym = test::chain_entry(5, false, Split::Test);
  sym.mol.atoms[4].symmetry_class = sym.mol.atoms[0].symmetry_class;
  DatasetEntry oxy = test::chain_entry(6, true, Split::Test);
  DatasetEntry flat = test::chain_entry(4, false, Split::Test);
  flat.mol.coords.clear();
  const std::vector<double> sym_pred = own_predictions(shift, sym);
  shifts_from_model(shift, sym);
  shifts_from_model(shift, oxy);
  ds.entries.push_back(sym);
  ds.entries.push_back(oxy);
  ds.entries.push_back(flat);

  const AlignDataset test_split(ds, Split::Test);
  REQUIRE(test_split.size() == 3);
  AlignModel align(AlignModelConfig::tiny(), 5);  // untrained: only the shift-predictor row is checked exactly
  AlignEvalOptions o;
  o.library = false;
  o.shift_model = &shift;
  for (int64_t batch : {1, 2}) {  // one molecule per forward, and padded batches
    CAPTURE(batch);
    o.shift_batch = batch;
    const AlignEvalReport rep = evaluate_align(align, test_split, ds, o);
    CHECK(rep.assignment.molecules == 3);
    CHECK(rep.assignment_optimal.molecules == 3);
    CHECK(rep.assignment_optimal.peaks == 5 + 6 + 4);
    CHECK(rep.assignment_optimal_by_size.at("<10").molecules == 3);
    REQUIRE(rep.predict_evaluated);
    CHECK(rep.predict_skipped == 1);
    CHECK(rep.assignment_predict.molecules == 2);
    CHECK(rep.assignment_predict.peaks == 5 + 6);
    CHECK(rep.assignment_predict.peak_accuracy() == 1.0);
    CHECK(rep.assignment_predict.fully_right_rate() == 1.0);
    CHECK(rep.assignment_predict_by_size.at("<10").molecules == 2);
    // the predictions the evaluation made are the ones made here: every carbon's error is 0 but the two
    // symmetric CH3 ends', which carry their mean (|p0 - p4| / 2 each)
    CHECK(rep.predict_error.n == 11);
    CHECK(rep.predict_error.mae() == doctest::Approx(std::abs(sym_pred[0] - sym_pred[4]) / 11).epsilon(1e-4));
    const std::string table = rep.table();
    CHECK(table.find("optimal (align scores, multiplicity)") != std::string::npos);
    CHECK(table.find("shift predictor + optimal") != std::string::npos);
    CHECK(rep.to_json().find("\"assignment_predict_optimal\"") != std::string::npos);
  }

  // two CH2 carbons of the 6-carbon chain trade shifts: exactly those two peaks go wrong
  Dataset swapped = ds;
  DatasetEntry& e = swapped.entries[swapped.entries.size() - 2];
  REQUIRE(e.mol.id == "chain6o");
  std::vector<AssignedShift*> ch2;
  for (AssignedShift& a : e.assigned)
    if (a.nucleus == Nucleus::C13 && (a.atom == 1 || a.atom == 2)) ch2.push_back(&a);
  REQUIRE(ch2.size() == 2);
  REQUIRE(ch2[0]->shift != ch2[1]->shift);
  std::swap(ch2[0]->shift, ch2[1]->shift);
  const AlignDataset swapped_split(swapped, Split::Test);
  const AlignEvalReport rep = evaluate_align(align, swapped_split, swapped, o);
  CHECK(rep.assignment_predict.peaks == 11);
  CHECK(rep.assignment_predict.correct_peaks == 9);

  // without a shift model the row is left out
  o.shift_model = nullptr;
  const AlignEvalReport plain = evaluate_align(align, test_split, ds, o);
  CHECK_FALSE(plain.predict_evaluated);
  CHECK(plain.table().find("shift predictor") == std::string::npos);
}
