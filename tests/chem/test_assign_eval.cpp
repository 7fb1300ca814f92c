// The optimal-assignment rows of `larmor eval align` (chem/align_training.h): on hand-made score blocks the
// optimal assignment over symmetry classes gives each carbon class as many peaks as it has carbons, so it
// beats the row argmax exactly where the argmax picks one carbon twice, lets symmetric carbons share peaks,
// and obeys multiplicities; with a tiny trained shift model, peaks that ARE the model's own predictions
// (computed here one molecule at a time, independently of the evaluation's padded batches) are assigned
// 100 % right, and two swapped peaks cost exactly those two. Retrieval by the shift predictor: the score of a
// hand-built candidate is checked against its value worked out by hand (L1 error + u per empty class), an
// impossible candidate scores -infinity, the top-10 re-ranking against hand-made orders, and with the tiny
// model every query whose peaks are the model's own predictions finds its molecule first while a peak list
// longer than its molecule's carbon count ranks it last. Hand-built fixtures, so the cases run fast.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "chem/align_training.h"
#include "chem/features.h"
#include "engine/error.h"
#include "tests/chem/shift_fixtures.h"

using namespace larmor;
using namespace larmor::chem;

namespace {

// The shift model's 13C prediction (ppm) of every atom of `mol`: one molecule, no padding; `solvent`
// overrides the entry's.
std::vector<double> own_predictions(LoadedShiftModel& m, const DatasetEntry& e,
                                    std::optional<Solvent> solvent = std::nullopt) {
  const MoleculeFeatures f = featurize(e.mol);
  const int64_t N = static_cast<int64_t>(f.tokens.size());
  ShiftBatch b;
  b.tokens = Tensor::from_vector(f.tokens, {1, N});
  b.coords = Tensor::from_vector(f.coords, {1, N, 3});
  b.key_mask = Tensor::from_vector(std::vector<int32_t>(static_cast<size_t>(N), 1), {1, N});
  const bool use_solvent = m.model->config().solvent_conditioning && m.data_options.use_solvent;
  const Solvent fed = solvent ? *solvent : e.solvent;
  b.solvent = Tensor::from_vector(std::vector<int32_t>{use_solvent ? static_cast<int32_t>(fed) : 0}, {1});
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
void shifts_from_model(LoadedShiftModel& m, DatasetEntry& e, std::optional<Solvent> solvent = std::nullopt) {
  const std::vector<double> pred = own_predictions(m, e, solvent);
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

TEST_CASE("optimal assignment on both costs: weight 0 is the predictor's, a large weight the scores'") {
  const std::vector<float> ppm = {30, 32};
  const std::vector<int32_t> cls = {0, 1}, mult = {4, 4};
  const std::vector<double> predicted = {31, 35};   // predictor: peak 0 -> carbon 0, peak 1 -> carbon 1
  const std::vector<double> scores = {0, 4, 4, 0};  // scores: the swap, with a 4-nat margin per peak
  CHECK(assign_peaks_optimal_combined(predicted, scores, 0.0, ppm, mult, cls, mult) ==
        assign_peaks_optimal_by_shifts(predicted, ppm, mult, cls, mult));
  CHECK(assign_peaks_optimal_combined(predicted, scores, 100.0, ppm, mult, cls, mult) ==
        assign_peaks_optimal_by_scores(scores, ppm, mult, cls, mult));
  CHECK(assign_peaks_optimal_by_scores(scores, ppm, mult, cls, mult) == std::vector<int32_t>{1, 0});
  // the predictor prefers its map by (5 + 1) - (1 + 3) = 2 ppm, the scores the swap by ~8 nats: w = 0.1
  // makes that 0.8 ppm (keep the predictor's map), w = 1 makes it 8 ppm (take the swap)
  CHECK(assign_peaks_optimal_combined(predicted, scores, 0.1, ppm, mult, cls, mult) == std::vector<int32_t>{0, 1});
  CHECK(assign_peaks_optimal_combined(predicted, scores, 1.0, ppm, mult, cls, mult) == std::vector<int32_t>{1, 0});
  CHECK_THROWS_AS(assign_peaks_optimal_combined(predicted, scores, -1.0, ppm, mult, cls, mult), Error);
  CHECK_THROWS_AS(assign_peaks_optimal_combined({31}, scores, 1.0, ppm, mult, cls, mult), Error);
  CHECK_THROWS_AS(assign_peaks_optimal_combined(predicted, {0, 1}, 1.0, ppm, mult, cls, mult), Error);
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

TEST_CASE("shift-predictor retrieval score: L1 error of the optimal assignment + u per class without a peak") {
  // classes: CH3 at 20, CH2 at 30, a symmetric pair of CH2 at 40, C at 170 (5 carbons, 4 classes)
  std::vector<CarbonClass> classes(4);
  classes[0].atoms = {0};
  classes[0].num_h = 3;
  classes[0].predicted_ppm = 20;
  classes[1].atoms = {1};
  classes[1].num_h = 2;
  classes[1].predicted_ppm = 30;
  classes[2].atoms = {2, 3};
  classes[2].num_h = 2;
  classes[2].predicted_ppm = 40;
  classes[3].atoms = {4};
  classes[3].num_h = 0;
  classes[3].predicted_ppm = 170;
  // peaks Q 21, T 29, unknown 168: 21 -> CH3 (1), 29 -> CH2 at 30 (1), 168 -> C (2); the pair at 40 is empty
  const std::vector<Peak> peaks = sample_peaks({21, 29, 168}, {3, 2, 4});
  const PredictedSpectrumFit fit = fit_predicted_spectrum(peaks, classes);
  REQUIRE(fit.possible);
  CHECK(fit.error == doctest::Approx(4.0));
  CHECK(fit.unmatched_classes == 1);
  CHECK(fit.score(0) == doctest::Approx(-4.0));
  CHECK(fit.score(5) == doctest::Approx(-9.0));
  CHECK(fit.score(20) == doctest::Approx(-24.0));
  // multiplicity is a hard constraint: a Q peak at 39 must go to the CH3 class (error 19), not the pair
  const PredictedSpectrumFit q = fit_predicted_spectrum(sample_peaks({39, 29}, {3, 2}), classes);
  REQUIRE(q.possible);
  CHECK(q.error == doctest::Approx(19.0 + 1.0));
  CHECK(q.unmatched_classes == 2);
  // a class of two carbons may take two peaks: 5 peaks on 5 carbons leave no class empty
  const PredictedSpectrumFit full = fit_predicted_spectrum(sample_peaks({20, 30, 39, 41, 170}, {4, 4, 4, 4, 4}), classes);
  REQUIRE(full.possible);
  CHECK(full.error == doctest::Approx(2.0));
  CHECK(full.unmatched_classes == 0);
  // more peaks than carbons: impossible, ranked behind every possible candidate
  const PredictedSpectrumFit six = fit_predicted_spectrum(sample_peaks({10, 20, 30, 40, 50, 60}, {4, 4, 4, 4, 4, 4}), classes);
  CHECK_FALSE(six.possible);
  CHECK(six.score(5) == -std::numeric_limits<double>::infinity());
  // a peak list assign_peaks rejects (shift outside -50..400 ppm) is impossible too
  CHECK_FALSE(fit_predicted_spectrum(sample_peaks({500}, {4}), classes).possible);
  CHECK_THROWS_AS(sample_peaks({20, 30}, {4}), Error);

  // predicted classes of a molecule: the mean of the class's atoms
  DatasetEntry chain = test::chain_entry(4, false, Split::Test);
  chain.mol.atoms[3].symmetry_class = chain.mol.atoms[0].symmetry_class;
  std::vector<double> atom_ppm(static_cast<size_t>(chain.mol.num_atoms()), 0.0);
  atom_ppm[0] = 10;
  atom_ppm[1] = 25;
  atom_ppm[2] = 26;
  atom_ppm[3] = 14;
  const std::vector<CarbonClass> chain_classes = predicted_carbon_classes(chain.mol, atom_ppm);
  REQUIRE(chain_classes.size() == 3);
  CHECK(chain_classes[0].atoms == std::vector<int32_t>{0, 3});
  CHECK(chain_classes[0].predicted_ppm == doctest::Approx(12.0));
  CHECK(chain_classes[0].num_h == 3);
  CHECK(chain_classes[2].predicted_ppm == doctest::Approx(26.0));
  CHECK_THROWS_AS(predicted_carbon_classes(chain.mol, {1.0, 2.0}), Error);
}

TEST_CASE("re-ranking the first order's top k by a second score") {
  const std::vector<float> first = {0.9f, 0.8f, 0.7f, 0.6f, 0.5f};
  const std::vector<double> second = {1, 2, 5, 3, 9};
  // truth 2 is third by the first score; among the top 3 only it has the best second score
  CHECK(reranked_rank(first, second, 2, 3) == 1);
  CHECK(reranked_rank(first, second, 0, 3) == 3);  // 2 and 5 ahead of it
  // truth 4 is outside the top 3: its first rank stays, whatever its second score
  CHECK(reranked_rank(first, second, 4, 3) == 5);
  CHECK(reranked_rank(first, second, 4, 5) == 1);
  // ties in the first score put the truth ahead of its ties: with k = 2 the top two are 0 and the truth
  const std::vector<float> tied = {0.9f, 0.5f, 0.5f, 0.5f};
  const std::vector<double> second_tied = {0, 3, 7, 2};
  CHECK(reranked_rank(tied, second_tied, 3, 2) == 1);  // top {0, 3}: 2 > 0
  CHECK(reranked_rank(tied, second_tied, 3, 3) == 2);  // top {0, 3, 1} (the lower-index tie): 3 ahead
  CHECK(reranked_rank(tied, second_tied, 3, 4) == 3);  // everyone: 3 and 7 ahead
  CHECK_THROWS_AS(reranked_rank(first, {1, 2}, 0, 3), Error);
  CHECK_THROWS_AS(reranked_rank(first, second, 5, 3), Error);
}

TEST_CASE("eval align: retrieval by the shift predictor finds the molecule whose predictions are the peaks") {
  LoadedShiftModel shift = load_shift_model(test::tiny_trained_model());
  Dataset ds;
  // six test molecules whose assigned 13C shifts (their spectra) are the model's own predictions with the
  // solvent unknown (as the retrieval predicts)
  for (const auto& [n, oxygen] : std::vector<std::pair<int, bool>>{{3, false}, {4, false}, {5, false}, {6, false},
                                                                   {3, true}, {4, true}}) {
    DatasetEntry e = test::chain_entry(n, oxygen, Split::Test);
    shifts_from_model(shift, e, Solvent::Unknown);
    ds.entries.push_back(e);
  }
  // a 2-carbon molecule whose spectrum is an unassigned list of 3 peaks: its own structure cannot explain it,
  // so it ranks behind every molecule that can (all six: last of 7)
  DatasetEntry too_many = test::chain_entry(2, false, Split::Test);
  too_many.mol.id = "chain2_three_peaks";
  too_many.assigned.clear();
  PeakSet ps;
  ps.shifts = {20, 30, 40};
  ps.mult = {kMultUnknown, kMultUnknown, kMultUnknown};
  too_many.peak_sets.push_back(ps);
  ds.entries.push_back(too_many);
  // the isomer row: the two 4-carbon chains (with and without O) share a (made-up) formula
  ds.entries[1].mol.formula = ds.entries[5].mol.formula = "C4X";

  const AlignDataset test_split(ds, Split::Test);
  REQUIRE(test_split.size() == 7);
  AlignModel align(AlignModelConfig::tiny(), 5);  // untrained: only the shift-predictor rows are checked
  AlignEvalOptions o;
  o.shift_model = &shift;
  o.shift_batch = 3;  // padded batches
  const AlignEvalReport rep = evaluate_align(align, test_split, ds, o);
  REQUIRE(rep.predict_evaluated);
  CHECK(rep.unmatched_penalty == 5.0);
  CHECK(rep.groups == 1);  // 7 < 128: one group of all
  CHECK(rep.predict_candidates == 7);
  CHECK(rep.predict_unpredicted == 0);
  CHECK(rep.predict_unscorable == 0);
  CHECK(rep.in_group_predict.n == 7);
  CHECK(rep.in_group_predict.top1 == 6);
  CHECK(rep.in_group_predict.top5 == 6);  // the 3-peak query: rank 7 of 7
  CHECK(rep.in_group_predict.top10 == 7);
  // a group of 7 lies inside the alignment model's top 10, so the re-ranked row is the predictor's order
  CHECK(rep.in_group_rerank.top1 == 6);
  CHECK(rep.in_group_rerank.top5 == 6);
  CHECK(rep.isomer_predict.n == 2);
  CHECK(rep.isomer_predict.top1 == 2);
  const std::string table = rep.table();
  CHECK(table.find("shift predictor, groups of 128") != std::string::npos);
  CHECK(table.find("align top-10 re-ranked by shift predictor") != std::string::npos);
  CHECK(table.find("shift predictor, isomers") != std::string::npos);
  const std::string js = rep.to_json();
  CHECK(js.find("\"in_group_predict\"") != std::string::npos);
  CHECK(js.find("\"isomer_predict\"") != std::string::npos);

  // the combined score (predictor + w x alignment logit): w -> 0 ranks as the predictor; a huge w ranks as the
  // alignment model among the candidates that can explain the peaks (impossible ones stay last, which only
  // helps a possible truth); w = 0 leaves the rows out
  CHECK(rep.combine_weight == 1.0);  // the default
  CHECK(table.find("alignment + shift predictor, groups") != std::string::npos);
  AlignEvalOptions tiny_w = o, huge_w = o, off = o;
  tiny_w.combine_weight = 1e-9;
  huge_w.combine_weight = 1e9;
  off.combine_weight = 0;
  const AlignEvalReport rt = evaluate_align(align, test_split, ds, tiny_w);
  CHECK(rt.in_group_combined.top1 == rep.in_group_predict.top1);
  CHECK(rt.in_group_combined.top5 == rep.in_group_predict.top5);
  CHECK(rt.isomer_combined.top1 == rep.isomer_predict.top1);
  const AlignEvalReport rh = evaluate_align(align, test_split, ds, huge_w);
  CHECK(rh.in_group_combined.top1 >= rep.in_group.top1);
  CHECK(rh.in_group_combined.top5 >= rep.in_group.top5);
  CHECK(rh.isomer_combined.top1 == rep.isomer.top1);  // both isomers can explain each other's peaks
  CHECK(evaluate_align(align, test_split, ds, off).table().find("alignment + shift predictor") == std::string::npos);
  off.combine_weight = -1;
  CHECK_THROWS_AS(evaluate_align(align, test_split, ds, off), Error);

  // the same scores from the public pieces: the truth scores ~0 (its own predictions) and every other
  // molecule strictly less; a structure with fewer carbons than peaks scores -infinity
  const std::vector<int64_t> entries = {0, 1, 2, 3, 4, 5, 6};
  const std::vector<std::vector<double>> atom_ppm = predict_13c_shifts(shift, ds, entries, Solvent::Unknown, 2);
  std::vector<std::vector<CarbonClass>> classes;
  for (int64_t e : entries) classes.push_back(predicted_carbon_classes(ds.entries[static_cast<size_t>(e)].mol, atom_ppm[static_cast<size_t>(e)]));
  for (int64_t q = 0; q < 6; ++q) {
    CAPTURE(q);
    const AlignSample& s = test_split.sample(q);
    REQUIRE(s.entry == q);
    const std::vector<Peak> peaks = sample_peaks(s.input.peak_ppm, s.input.peak_multiplicity);
    const double own = fit_predicted_spectrum(peaks, classes[static_cast<size_t>(q)]).score(5);
    CHECK(own == doctest::Approx(0.0).epsilon(1e-3).scale(1.0));
    for (int64_t c = 0; c < 7; ++c)
      if (c != q) CHECK(fit_predicted_spectrum(peaks, classes[static_cast<size_t>(c)]).score(5) < own);
  }
  const AlignSample& bad = test_split.sample(6);
  const std::vector<Peak> bad_peaks = sample_peaks(bad.input.peak_ppm, bad.input.peak_multiplicity);
  CHECK(fit_predicted_spectrum(bad_peaks, classes[6]).score(5) == -std::numeric_limits<double>::infinity());
}
