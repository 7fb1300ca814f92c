// chem/assignment: every optimum is checked against exhaustive enumeration on small random problems (square
// and rectangular, with forbidden pairs and ties), the capacitated class problem against enumeration of all
// capacity-respecting maps, Murty's k best against the sorted enumeration; then the NMR rules: multiplicities
// as a hard constraint with its fallback, one peak per class preferred, confidences in [0, 1] and high only
// for well-separated peaks, and clear errors for bad peak lists.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "chem/assignment.h"
#include "chem/peak_list.h"
#include "engine/error.h"
#include "tests/chem/peak_fixtures.h"

using namespace larmor;
using namespace larmor::chem;

namespace {
using test::peak;

// Best cost over all injective maps rows -> cols (brute force); +inf when none is finite.
double brute_force_linear(const std::vector<double>& cost, int rows, int cols) {
  double best = kForbiddenCost;
  std::vector<int> cols_idx(cols);
  for (int j = 0; j < cols; ++j) cols_idx[j] = j;
  // every permutation of the columns; the first `rows` entries are the map (duplicates of the tail are
  // harmless, just repeated work)
  do {
    double s = 0;
    for (int r = 0; r < rows; ++r) s += cost[static_cast<size_t>(r) * cols + cols_idx[r]];
    best = std::min(best, s);
  } while (std::next_permutation(cols_idx.begin(), cols_idx.end()));
  return best;
}

// Every row -> class map (capacities and forbidden pairs respected) with its objective, sorted.
std::vector<std::pair<double, std::vector<int32_t>>> enumerate_class_maps(const ClassAssignmentProblem& p) {
  std::vector<std::pair<double, std::vector<int32_t>>> out;
  const int32_t classes = static_cast<int32_t>(p.capacity.size());
  std::vector<int32_t> map(p.rows, 0);
  std::function<void(int32_t)> rec = [&](int32_t r) {
    if (r == p.rows) {
      const double v = class_assignment_objective(p, map);
      if (std::isfinite(v)) out.emplace_back(v, map);
      return;
    }
    for (int32_t c = 0; c < classes; ++c) {
      map[r] = c;
      rec(r + 1);
    }
  };
  rec(0);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

ClassAssignmentProblem random_class_problem(std::mt19937& rng, bool integer_costs) {
  std::uniform_int_distribution<int> n_classes(1, 4), cap(1, 3), coin(0, 9);
  std::uniform_real_distribution<double> u(0.0, 10.0);
  ClassAssignmentProblem p;
  const int classes = n_classes(rng);
  int slots = 0;
  for (int c = 0; c < classes; ++c) {
    p.capacity.push_back(cap(rng));
    slots += p.capacity.back();
  }
  p.rows = std::uniform_int_distribution<int>(1, std::min(slots, 5))(rng);
  for (int i = 0; i < p.rows * classes; ++i) {
    const double v = integer_costs ? std::floor(u(rng)) : u(rng);
    p.cost.push_back(coin(rng) == 0 ? kForbiddenCost : v);
  }
  p.extra_penalty = (coin(rng) < 5) ? 0.0 : std::floor(u(rng));
  return p;
}

CarbonClass cls(std::vector<int32_t> atoms, int32_t num_h, double ppm) {
  CarbonClass c;
  c.atoms = std::move(atoms);
  c.num_h = num_h;
  c.predicted_ppm = ppm;
  return c;
}

}  // namespace

TEST_CASE("assignment: Hungarian equals brute force on 300 random problems") {
  std::mt19937 rng(12345);
  int infeasible = 0, rectangular = 0;
  for (int t = 0; t < 300; ++t) {
    const int rows = std::uniform_int_distribution<int>(1, 6)(rng);
    const int cols = std::uniform_int_distribution<int>(rows, 7)(rng);
    rectangular += cols > rows;
    const bool integer = t % 3 == 0;     // many ties
    const bool sparse = t % 4 == 1;      // many forbidden pairs
    std::uniform_real_distribution<double> u(-5.0, 20.0);
    std::vector<double> cost(static_cast<size_t>(rows) * cols);
    for (double& v : cost) {
      v = integer ? std::floor(u(rng)) : u(rng);
      if (std::uniform_int_distribution<int>(0, 9)(rng) < (sparse ? 6 : 1)) v = kForbiddenCost;
    }
    const double expected = brute_force_linear(cost, rows, cols);
    const std::optional<LinearAssignment> got = solve_linear_assignment(cost, rows, cols);
    CAPTURE(t);
    if (!std::isfinite(expected)) {
      CHECK_FALSE(got.has_value());
      ++infeasible;
      continue;
    }
    REQUIRE(got.has_value());
    CHECK(got->cost == doctest::Approx(expected).epsilon(1e-12));
    // a valid injective map whose entries sum to the reported cost
    std::set<int32_t> used(got->row_to_col.begin(), got->row_to_col.end());
    CHECK(used.size() == static_cast<size_t>(rows));
    double s = 0;
    for (int r = 0; r < rows; ++r) s += cost[static_cast<size_t>(r) * cols + got->row_to_col[r]];
    CHECK(s == doctest::Approx(got->cost));
    // dual feasibility: cost >= u + v everywhere (tight on the map), free columns at 0
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) {
        const double v = cost[static_cast<size_t>(r) * cols + c];
        if (std::isfinite(v)) CHECK(v - got->row_potential[r] - got->col_potential[c] >= -1e-9);
      }
    for (int c = 0; c < cols; ++c)
      if (!used.count(c)) CHECK(got->col_potential[c] == 0.0);
  }
  CHECK(infeasible > 5);  // the forbidden pairs really made some problems infeasible
  CHECK(rectangular > 100);
  CHECK_THROWS_AS(solve_linear_assignment({1, 2}, 2, 1), Error);
  CHECK_THROWS_AS(solve_linear_assignment({1, NAN}, 1, 2), Error);
  CHECK(solve_linear_assignment({}, 0, 0)->row_to_col.empty());
}

TEST_CASE("assignment: capacitated classes equal brute force; Murty k best equals the sorted enumeration") {
  std::mt19937 rng(777);
  for (int t = 0; t < 200; ++t) {
    const ClassAssignmentProblem p = random_class_problem(rng, t % 2 == 0);
    CAPTURE(t);
    const auto all = enumerate_class_maps(p);
    const std::optional<ClassAssignment> best = solve_class_assignment(p);
    if (all.empty()) {
      CHECK_FALSE(best.has_value());
      CHECK(k_best_class_assignments(p, 3).empty());
      continue;
    }
    REQUIRE(best.has_value());
    CHECK(best->objective == doctest::Approx(all[0].first));
    CHECK(class_assignment_objective(p, best->row_to_class) == doctest::Approx(best->objective));

    const int k = std::uniform_int_distribution<int>(1, 8)(rng);
    const std::vector<ClassAssignment> kb = k_best_class_assignments(p, k);
    REQUIRE(kb.size() == std::min<size_t>(static_cast<size_t>(k), all.size()));
    std::set<std::vector<int32_t>> distinct;
    for (size_t i = 0; i < kb.size(); ++i) {
      CHECK(kb[i].objective == doctest::Approx(all[i].first));  // the i-th best cost
      CHECK(class_assignment_objective(p, kb[i].row_to_class) == doctest::Approx(kb[i].objective));
      distinct.insert(kb[i].row_to_class);
    }
    CHECK(distinct.size() == kb.size());
  }
  // forcing a row pins it
  ClassAssignmentProblem p;
  p.rows = 2;
  p.capacity = {1, 1};
  p.cost = {0, 5, 5, 0};
  CHECK(solve_class_assignment(p)->row_to_class == std::vector<int32_t>{0, 1});
  CHECK(solve_class_assignment(p, {1, -1})->row_to_class == std::vector<int32_t>{1, 0});
  CHECK(solve_class_assignment(p, {1, -1})->objective == doctest::Approx(10));
}

TEST_CASE("assignment: one peak per class preferred, several allowed for symmetric carbons") {
  // Toluene-like: 5 classes (ipso, ortho x2, meta x2, para, CH3).
  const std::vector<CarbonClass> classes = {cls({0}, 3, 21.4), cls({1}, 0, 137.9), cls({2, 6}, 1, 129.1),
                                            cls({3, 5}, 1, 128.3), cls({4}, 1, 125.4)};
  SUBCASE("one peak per class: every class used once") {
    const std::vector<Peak> peaks = {peak(137.8), peak(129.0), peak(128.2), peak(125.3), peak(21.5)};
    const PeakAssignmentResult r = assign_peaks(peaks, classes, {}, AssignOptions{});
    const PeakAssignment& a = r.assignments.at(0);
    std::vector<int32_t> got;
    for (const PeakMatch& m : a.matches) got.push_back(m.cls);
    CHECK(got == std::vector<int32_t>{1, 2, 3, 4, 0});
    CHECK(a.extra_peaks == 0);
    CHECK(a.cost == doctest::Approx(0.5 + 5 * 0.01 * AssignOptions{}.l2_tie_break));
  }
  SUBCASE("a peak per carbon (NMR8K style): the symmetric classes take two, on distinct atoms") {
    const std::vector<Peak> peaks = {peak(137.8), peak(129.0), peak(129.0), peak(128.2),
                                     peak(128.2), peak(125.3), peak(21.5)};
    const PeakAssignmentResult r = assign_peaks(peaks, classes, {}, AssignOptions{});
    const PeakAssignment& a = r.assignments.at(0);
    CHECK(a.extra_peaks == 2);
    CHECK(a.matches[1].cls == 2);
    CHECK(a.matches[2].cls == 2);
    CHECK(a.matches[1].atom == 2);
    CHECK(a.matches[2].atom == 6);
    CHECK(a.matches[3].cls == 3);
    CHECK(a.matches[4].cls == 3);
    CHECK(a.matches[0].confidence > 0.99);  // 137.8: nothing near
    // 129.0 vs 128.2 against predictions 129.1 / 128.3 at T = 2 ppm: likely but not sure; the identical twin
    // on the same class is not an alternative
    CHECK(a.matches[1].confidence > 0.5);
    CHECK(a.matches[1].confidence < 0.9);
  }
  SUBCASE("no more peaks than classes: a class never takes two even if closer in ppm") {
    // both peaks are near class 0's prediction, but one peak per class is the rule
    const std::vector<CarbonClass> two = {cls({0, 1}, 2, 30.0), cls({2}, 2, 60.0)};
    const PeakAssignmentResult r = assign_peaks({peak(30.2), peak(31.0)}, two, {}, AssignOptions{});
    CHECK(r.assignments[0].extra_peaks == 0);
    CHECK(r.assignments[0].matches[1].cls == 1);
    AssignOptions free_choice;
    free_choice.extra_peak_penalty = 0;
    const PeakAssignmentResult s = assign_peaks({peak(30.2), peak(31.0)}, two, {}, free_choice);
    CHECK(s.assignments[0].matches[1].cls == 0);  // without the penalty the symmetric class takes both
  }
}

TEST_CASE("assignment: capacities and penalties of the NMR problem equal brute force") {
  std::mt19937 rng(99);
  for (int t = 0; t < 100; ++t) {
    CAPTURE(t);
    std::uniform_real_distribution<double> ppm(0.0, 200.0);
    std::uniform_int_distribution<int> size(1, 3), nh(0, 3);
    std::vector<CarbonClass> classes;
    const int n_classes = std::uniform_int_distribution<int>(1, 4)(rng);
    int carbons = 0;
    for (int c = 0; c < n_classes; ++c) {
      std::vector<int32_t> atoms;
      for (int i = size(rng); i > 0; --i) atoms.push_back(carbons++);
      classes.push_back(cls(atoms, nh(rng), ppm(rng)));
    }
    std::vector<Peak> peaks;
    const int n_peaks = std::uniform_int_distribution<int>(1, std::min(carbons, 5))(rng);
    for (int i = 0; i < n_peaks; ++i) peaks.push_back(peak(ppm(rng)));
    AssignOptions o;
    o.extra_peak_penalty = t % 2 ? 1000.0 : 7.0;
    o.k_best = 4;
    const PeakAssignmentResult r = assign_peaks(peaks, classes, {}, o);
    ClassAssignmentProblem p;
    p.rows = n_peaks;
    p.extra_penalty = o.extra_peak_penalty;
    for (const CarbonClass& c : classes) p.capacity.push_back(static_cast<int32_t>(c.atoms.size()));
    for (const Peak& pk : peaks)
      for (const CarbonClass& c : classes) {
        const double d = c.predicted_ppm - pk.shift;
        p.cost.push_back(std::fabs(d) + o.l2_tie_break * d * d);
      }
    const auto all = enumerate_class_maps(p);
    REQUIRE(r.assignments.size() == std::min<size_t>(4, all.size()));
    for (size_t i = 0; i < r.assignments.size(); ++i) CHECK(r.assignments[i].objective == doctest::Approx(all[i].first));
    // class probabilities: a distribution per peak; the confidences lie in [0, 1]
    for (int32_t i = 0; i < n_peaks; ++i) {
      double s = 0;
      for (int32_t c = 0; c < n_classes; ++c) s += r.class_probability[static_cast<size_t>(i) * n_classes + c];
      CHECK(s == doctest::Approx(1.0));
    }
    for (const PeakAssignment& a : r.assignments)
      for (const PeakMatch& m : a.matches) {
        CHECK(m.confidence >= 0.0);
        CHECK(m.confidence <= 1.0);
      }
  }
}

TEST_CASE("assignment: multiplicity is a hard constraint, with a fallback when infeasible") {
  // a CH3 predicted at 40 and a CH2 predicted at 30; the peaks sit nearer the wrong ones
  const std::vector<CarbonClass> classes = {cls({0}, 3, 40.0), cls({1}, 2, 30.0)};
  SUBCASE("respected even against the shifts") {
    const PeakAssignmentResult r = assign_peaks({peak(39.0, 2), peak(31.0, 3)}, classes, {}, AssignOptions{});
    CHECK(r.multiplicity_used);
    CHECK(r.warnings.empty());
    CHECK(r.assignments[0].matches[0].cls == 1);
    CHECK(r.assignments[0].matches[1].cls == 0);
    // the constraint leaves no alternative: certain
    CHECK(r.assignments[0].matches[0].confidence == doctest::Approx(1.0));
  }
  SUBCASE("switched off") {
    AssignOptions o;
    o.use_multiplicity = false;
    const PeakAssignmentResult r = assign_peaks({peak(39.0, 2), peak(31.0, 3)}, classes, {}, o);
    CHECK_FALSE(r.multiplicity_used);
    CHECK(r.assignments[0].matches[0].cls == 0);
  }
  SUBCASE("only some peaks have one") {
    const PeakAssignmentResult r = assign_peaks({peak(39.0), peak(31.0, 3)}, classes, {}, AssignOptions{});
    CHECK(r.multiplicity_used);
    CHECK(r.assignments[0].matches[1].cls == 0);
    CHECK(r.assignments[0].matches[0].cls == 1);
  }
  SUBCASE("infeasible: two Q peaks for one CH3 -> unconstrained with a warning") {
    const PeakAssignmentResult r = assign_peaks({peak(39.0, 3), peak(31.0, 3)}, classes, {}, AssignOptions{});
    CHECK_FALSE(r.multiplicity_used);
    REQUIRE(r.warnings.size() == 1);
    CHECK(r.warnings[0].find("2 Q peaks but 1 CH3 carbon") != std::string::npos);
    CHECK(r.assignments[0].matches[0].cls == 0);
    CHECK(r.assignments[0].matches[1].cls == 1);
  }
  SUBCASE("an isopropyl pair takes two Q peaks (capacity 2)") {
    const std::vector<CarbonClass> ipr = {cls({0, 2}, 3, 22.0), cls({1}, 1, 34.0)};
    const PeakAssignmentResult r = assign_peaks({peak(21.0, 3), peak(23.1, 3), peak(34.5, 1)}, ipr, {}, AssignOptions{});
    CHECK(r.multiplicity_used);
    CHECK(r.assignments[0].matches[0].atom == 0);
    CHECK(r.assignments[0].matches[1].atom == 2);
    CHECK(r.assignments[0].matches[2].atom == 1);
  }
}

TEST_CASE("assignment: confidence is in [0, 1] and higher for well-separated peaks") {
  const std::vector<CarbonClass> classes = {cls({0}, 1, 10.0), cls({1}, 1, 50.0), cls({2}, 1, 100.0),
                                            cls({3}, 1, 30.0), cls({4}, 1, 30.5)};
  const std::vector<Peak> peaks = {peak(10.2), peak(50.3), peak(99.8), peak(30.1), peak(30.4)};
  AssignOptions pure_l1;
  pure_l1.l2_tie_break = 0;
  const PeakAssignmentResult r = assign_peaks(peaks, classes, {}, pure_l1);
  const PeakAssignment& a = r.assignments[0];
  for (const PeakMatch& m : a.matches) {
    CHECK(m.confidence >= 0.0);
    CHECK(m.confidence <= 1.0);
  }
  CHECK(a.matches[0].confidence > 0.999);
  CHECK(a.matches[2].confidence > 0.999);
  // 30.1 / 30.4 against 30.0 / 30.5: swapping costs 0.6 ppm more -> logistic(0.6 / T) with T = 2
  CHECK(a.matches[3].cls == 3);
  CHECK(a.matches[3].confidence == doctest::Approx(1.0 / (1.0 + std::exp(-0.3))).epsilon(1e-6));
  CHECK(a.matches[3].confidence < 0.7);
  // a lower temperature makes the same gap more decisive
  AssignOptions cold = pure_l1;
  cold.temperature = 0.1;
  CHECK(assign_peaks(peaks, classes, {}, cold).assignments[0].matches[3].confidence > 0.99);
  // a method's own cost matrix is used as given (here it prefers the swap)
  std::vector<double> cost(25, 50.0);
  for (int i = 0; i < 5; ++i) cost[static_cast<size_t>(i) * 5 + i] = 0.0;
  cost[3 * 5 + 3] = 5.0;
  cost[4 * 5 + 4] = 5.0;
  cost[3 * 5 + 4] = 1.0;
  cost[4 * 5 + 3] = 1.0;
  const PeakAssignmentResult m = assign_peaks(peaks, classes, cost, AssignOptions{});
  CHECK(m.assignments[0].matches[3].cls == 4);
  CHECK(m.assignments[0].cost == doctest::Approx(2.0));
}

TEST_CASE("assignment: the squared tie-break picks the order-preserving match among L1 ties") {
  // both peaks lie above both predictions: L1 costs 2 + 6 either way
  const std::vector<CarbonClass> classes = {cls({0}, 1, 27.5), cls({1}, 1, 28.9)};
  const std::vector<Peak> peaks = {peak(31.0), peak(33.0)};
  const PeakAssignmentResult r = assign_peaks(peaks, classes, {}, AssignOptions{});
  CHECK(r.assignments[0].matches[0].cls == 0);  // lower peak on the lower prediction
  CHECK(r.assignments[0].matches[1].cls == 1);
  // the tie is real for L1, so the confidence stays near one half
  CHECK(r.assignments[0].matches[0].confidence == doctest::Approx(0.5).epsilon(0.01));
  AssignOptions o;
  o.k_best = 2;
  o.l2_tie_break = 0;
  const PeakAssignmentResult l1 = assign_peaks(peaks, classes, {}, o);
  CHECK(l1.assignments[0].cost == doctest::Approx(l1.assignments[1].cost));
}

TEST_CASE("assignment: k best lists distinct alternatives in cost order") {
  const std::vector<CarbonClass> classes = {cls({0}, 1, 10.0), cls({1}, 1, 20.0), cls({2}, 1, 30.0)};
  AssignOptions o;
  o.k_best = 10;
  o.l2_tie_break = 0;
  const PeakAssignmentResult r = assign_peaks({peak(11.0), peak(19.0), peak(31.0)}, classes, {}, o);
  REQUIRE(r.assignments.size() == 6);  // 3! maps of 3 peaks onto 3 classes
  for (size_t i = 1; i < r.assignments.size(); ++i)
    CHECK(r.assignments[i].objective >= r.assignments[i - 1].objective);
  CHECK(r.assignments[0].cost == doctest::Approx(3.0));
  CHECK(r.assignments[1].cost == doctest::Approx(19.0));  // swap 11/19: |10-19| + |20-11| + 1
  // twins (identical peaks) on two classes: their swap is the same answer and is not listed again
  const std::vector<CarbonClass> pair = {cls({0}, 1, 128.0), cls({1}, 1, 129.0), cls({2}, 1, 20.0)};
  const PeakAssignmentResult t = assign_peaks({peak(128.5), peak(128.5)}, pair, {}, o);
  REQUIRE(t.assignments.size() >= 2);
  std::set<int32_t> first{t.assignments[0].matches[0].cls, t.assignments[0].matches[1].cls};
  std::set<int32_t> second{t.assignments[1].matches[0].cls, t.assignments[1].matches[1].cls};
  CHECK(first == std::set<int32_t>{0, 1});
  CHECK(second != first);
  CHECK(t.assignments[0].matches[0].confidence > 0.99);
}

TEST_CASE("assignment: bad peak lists give clear errors") {
  const std::vector<CarbonClass> classes = {cls({0}, 3, 20.0), cls({1, 2}, 2, 30.0)};
  CHECK_THROWS_WITH_AS(parse_peak_list_text("# nothing here\n\n", "empty.txt"), doctest::Contains("empty.txt"), Error);
  CHECK_THROWS_WITH_AS(parse_peak_list_text("12.0\nabc\n", "bad.txt"), doctest::Contains("bad.txt:2"), Error);
  CHECK_THROWS_WITH_AS(parse_peak_list_text("12.0\nnan\n", "nan.txt"), doctest::Contains("nan.txt:2"), Error);
  CHECK_THROWS_WITH_AS(parse_peak_list_text("12.0 X\n", "mult.txt"), doctest::Contains("mult.txt:1"), Error);
  CHECK_THROWS_WITH_AS(assign_peaks({peak(1), peak(2), peak(3), peak(4)}, classes, {}, AssignOptions{}, "many.txt"),
                       doctest::Contains("many.txt: 4 peaks but the molecule has only 3 carbons"), Error);
  CHECK_THROWS_WITH_AS(assign_peaks({}, classes, {}, AssignOptions{}, "none.txt"), doctest::Contains("none.txt: empty"),
                       Error);
  CHECK_THROWS_WITH_AS(assign_peaks({peak(NAN)}, classes, {}, AssignOptions{}, "x.txt"),
                       doctest::Contains("x.txt: peak 1"), Error);
  CHECK_THROWS_WITH_AS(assign_peaks({peak(20), peak(1280.0)}, classes, {}, AssignOptions{}, "typo.txt"),
                       doctest::Contains("typo.txt: peak 2 at 1280 ppm is outside"), Error);
  CHECK_THROWS_AS(assign_peaks({peak(20)}, classes, std::vector<double>{1.0}, AssignOptions{}), Error);  // wrong size
  CHECK_THROWS_AS(assign_peaks({peak(20)}, {cls({0}, 3, NAN)}, {}, AssignOptions{}), Error);  // no prediction
  // three peaks fit three carbons (two of them symmetric)
  CHECK(assign_peaks({peak(20), peak(30), peak(30)}, classes, {}, AssignOptions{}).assignments.size() == 1);
}

TEST_CASE("assignment: class costs from scores are -log softmax of each class's best carbon") {
  // 2 peaks x 3 carbons; classes {0, 2} and {1}
  const std::vector<double> scores = {1.0, 0.0, 3.0,   //
                                      -2.0, 4.0, -1.0};
  const std::vector<double> cost = class_costs_from_scores(scores, 2, 3, {{0, 2}, {1}});
  REQUIRE(cost.size() == 4);
  // peak 0: class scores (3, 0); peak 1: (-1, 4)
  const double z0 = std::log(std::exp(3.0) + std::exp(0.0)), z1 = std::log(std::exp(-1.0) + std::exp(4.0));
  CHECK(cost[0] == doctest::Approx(z0 - 3.0));
  CHECK(cost[1] == doctest::Approx(z0 - 0.0));
  CHECK(cost[2] == doctest::Approx(z1 + 1.0));
  CHECK(cost[3] == doctest::Approx(z1 - 4.0));
  for (int p = 0; p < 2; ++p) CHECK(std::exp(-cost[p * 2]) + std::exp(-cost[p * 2 + 1]) == doctest::Approx(1.0));
  // stable for large scores (no overflow)
  const std::vector<double> big = class_costs_from_scores({1000.0, 999.0}, 1, 2, {{0}, {1}});
  CHECK(big[0] == doctest::Approx(std::log1p(std::exp(-1.0))));
  CHECK_THROWS_AS(class_costs_from_scores(scores, 2, 2, {{0}}), Error);
  CHECK_THROWS_AS(class_costs_from_scores(scores, 2, 3, {{0}, {}}), Error);
  CHECK_THROWS_AS(class_costs_from_scores(scores, 2, 3, {{0}, {3}}), Error);
}
