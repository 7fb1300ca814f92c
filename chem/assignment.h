// Optimal peak-to-atom assignment for `larmor assign` (no Open Babel: plain numbers in, indices out).
//
// Why it is built this way:
//   - Two layers. The bottom is a general min-cost rectangular assignment (rows <= columns, every row
//     assigned, +infinity = forbidden pair), solved by shortest augmenting paths with row/column potentials
//     (the Jonker-Volgenant form of the Hungarian method, O(rows^2 * columns)). Its duals are kept: they
//     give a cheap lower bound that prunes the confidence computation.
//   - The NMR problem sits on top: 13C peaks vs carbon symmetry classes. In a 13C spectrum equivalent
//     carbons give one peak, but many peak lists (NMR8K style) repeat that peak once per carbon, and
//     diastereotopic carbons (menthol's isopropyl methyls) are one topological class yet two peaks. So a
//     class of k carbons has k slots (capacity k); the first peak on a class costs its plain cost, every
//     further peak on the same class pays AssignOptions::extra_peak_penalty. The default penalty (1000, far
//     above any shift error) makes the rule lexicographic: first use as many distinct classes as possible
//     (one peak per class whenever there are no more peaks than classes), then minimise the summed cost.
//   - Method-agnostic: the cost of peak p on class c is |predicted_c - ppm_p| (L1, plus a tiny squared term
//     that only breaks L1's ties) when the classes carry predicted shifts, or any cost matrix a method supplies (e.g. -log scores of an alignment model).
//     Everything downstream (multiplicities, confidences, k best) only sees that matrix.
//   - Multiplicity (S/D/T/Q = 0..3 attached H) is a hard constraint when a peak has one: the peak may only go
//     to classes whose carbons carry that many H. If that makes the problem infeasible (more Q peaks than CH3
//     carbons, ...), the whole problem is solved without multiplicities and a warning says why.
//   - Confidence of a peak = the probability that its class is right under a Laplace error model with scale
//     `temperature` (cost / T = negative log-likelihood, a uniform prior over assignments), approximated by
//     min-marginals: m_pc = the best objective with peak p forced onto class c, P(p -> c) =
//     softmax_c(-(m_pc - m_best) / T). With two candidates this is the logistic of the cost gap; every further
//     plausible class lowers it. Peaks with the same ppm and multiplicity are interchangeable, so a peak's
//     confidence sums P over the classes holding it or an identical twin (swapping twins is not an
//     alternative). With the L1 cost, T is in ppm: the method's mean absolute error is the natural choice.
//   - k best: Murty's partition over the class-level problem, so alternatives are distinct peak -> class
//     maps (permuting peaks among the slots of one class is not a new assignment). Alternatives that only
//     swap identical peaks are skipped.
#pragma once
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "chem/molecule.h"
#include "chem/nmr.h"

namespace larmor::chem {

inline constexpr double kForbiddenCost = std::numeric_limits<double>::infinity();

// ---- general rectangular assignment ----

struct LinearAssignment {
  std::vector<int32_t> row_to_col;  // (rows,) the column of every row
  double cost = 0;                  // sum of the chosen entries
  std::vector<double> row_potential, col_potential;  // optimal duals: cost(r,c) >= row_pot[r] + col_pot[c]
};

// cost: (rows, cols) row-major, rows <= cols; +infinity marks a forbidden pair; NaN is not allowed. Returns
// nullopt when no assignment of finite cost exists. Throws larmor::Error on bad shapes or NaN.
std::optional<LinearAssignment> solve_linear_assignment(const std::vector<double>& cost, int32_t rows, int32_t cols);

// ---- rows onto capacitated classes ----

struct ClassAssignmentProblem {
  int32_t rows = 0;
  std::vector<int32_t> capacity;  // (classes,) at most this many rows per class (>= 1)
  std::vector<double> cost;       // (rows, classes) row-major; +infinity = not allowed
  double extra_penalty = 0;       // added for every row beyond the first on one class
};

struct ClassAssignment {
  std::vector<int32_t> row_to_class;  // (rows,)
  double objective = 0;               // sum of costs + extra_penalty * extra rows
  double cost = 0;                    // sum of costs only
  int32_t extra_rows = 0;             // rows beyond the first on their class
};

// Objective of a given map (for tests and callers that build maps themselves); +infinity if it breaks a
// capacity or uses a forbidden pair.
double class_assignment_objective(const ClassAssignmentProblem& p, const std::vector<int32_t>& row_to_class);

// The optimal map (nullopt when infeasible). `forced[r]` >= 0 pins row r to that class.
std::optional<ClassAssignment> solve_class_assignment(const ClassAssignmentProblem& p,
                                                      const std::vector<int32_t>& forced = {});

// Murty's algorithm: up to k distinct maps in increasing objective (fewer when fewer exist). The first is the
// optimum. `twin_group` (optional, (rows,)): rows with the same id are interchangeable, and a map that equals
// an earlier one up to permuting such rows is skipped. At most max(1000, 50 k) maps are examined, so with
// many twins fewer than k may come back.
std::vector<ClassAssignment> k_best_class_assignments(const ClassAssignmentProblem& p, int32_t k,
                                                      const std::vector<int32_t>& twin_group = {});

// Cost matrix of a scoring method (higher score = better match): scores (peaks, carbons) row-major, classes
// = the carbons of each class (indices into the score columns). cost(p, k) = -log softmax_k of the class's best
// carbon score: in nats, so AssignOptions::temperature = 1 reads the confidences as the method's own
// probabilities under the assignment constraints. Throws larmor::Error on bad sizes, an empty class or an index
// out of range.
std::vector<double> class_costs_from_scores(const std::vector<double>& scores, int64_t peaks, int64_t carbons,
                                            const std::vector<std::vector<int32_t>>& classes);

// ---- the NMR problem ----

// Carbons of one symmetry class.
struct CarbonClass {
  std::vector<int32_t> atoms;  // ascending, 0-based molecule indices
  int32_t num_h = 0;           // attached H of each carbon (equal within a class)
  double predicted_ppm = std::numeric_limits<double>::quiet_NaN();  // NaN when the method gives costs only
};

// The molecule's carbons grouped by Atom::symmetry_class, ordered by first atom. Throws larmor::Error when the
// molecule has no carbon.
std::vector<CarbonClass> carbon_classes(const Molecule& mol);

// carbon_classes with predicted_ppm = the mean of atom_ppm over each class's atoms (what a shift predictor
// hands the L1 cost). atom_ppm: one value per atom of mol (only the carbons' are read). Throws larmor::Error
// when the lengths differ or the molecule has no carbon.
std::vector<CarbonClass> predicted_carbon_classes(const Molecule& mol, const std::vector<double>& atom_ppm);

struct AssignOptions {
  bool use_multiplicity = true;     // peaks with a multiplicity only go to carbons with that many H
  double extra_peak_penalty = 1000; // per peak beyond the first on one class (see the top of this file)
  double temperature = 2.0;         // confidence scale, in cost units (ppm for the L1 cost)
  bool confidences = true;          // false: only the maps (no min-marginal solves; confidence NaN,
                                    // class_probability empty) for callers that only score the best map
  // L1 cost only: + this * (predicted - ppm)^2 per peak. L1 alone cannot tell apart two peaks that both lie
  // above (or both below) their two candidate predictions (either order costs the same); the small squared
  // term breaks such ties towards the order-preserving match.
  double l2_tie_break = 1e-3;
  int32_t k_best = 1;               // assignments to return (the best + k-1 alternatives)
};

struct PeakMatch {
  int32_t peak = -1;      // index into the peak list
  int32_t cls = -1;       // index into the classes
  int32_t atom = -1;      // one atom of the class: the j-th peak on a class (in peak order) gets its j-th atom
  double cost = 0;        // the cost matrix entry (|predicted - ppm| + tie-break term for L1)
  double confidence = 0;  // [0, 1], see the top of this file; NaN when AssignOptions::confidences is off
};

struct PeakAssignment {
  std::vector<PeakMatch> matches;  // (peaks,) in peak order
  double objective = 0;            // cost + penalties
  double cost = 0;                 // sum of matches[].cost
  int32_t extra_peaks = 0;         // peaks beyond the first on their class
};

struct PeakAssignmentResult {
  std::vector<PeakAssignment> assignments;  // best first; size <= options.k_best
  // (peaks, classes) row-major: P(peak -> class) by min-marginals (rows sum to 1); empty when
  // AssignOptions::confidences is off.
  std::vector<double> class_probability;
  bool multiplicity_used = false;  // false when no peak has one, it was switched off, or it was infeasible
  std::vector<std::string> warnings;
};

// The L1 cost of every peak on every class, (peaks, classes) row-major: |d| + l2_tie_break * d^2 with
// d = classes[c].predicted_ppm - peaks[p].shift (the cost assign_peaks uses when a method passes none).
// Throws larmor::Error, starting with `name`, when a class has no predicted shift.
std::vector<double> predicted_shift_costs(const std::vector<Peak>& peaks, const std::vector<CarbonClass>& classes,
                                          double l2_tie_break, const std::string& name);

// Solves the assignment of `peaks` to `classes`. cost: (peaks, classes) row-major, or empty for the L1 cost
// |d| + l2_tie_break * d^2 with d = classes[c].predicted_ppm - peaks[p].shift. `name` (the peak list's file name) starts error messages.
// Throws larmor::Error for an empty list, a non-finite or out-of-range (outside -50..400 ppm) shift, more
// peaks than carbons, a class without a predicted shift under the L1 cost, or a bad cost matrix.
PeakAssignmentResult assign_peaks(const std::vector<Peak>& peaks, const std::vector<CarbonClass>& classes,
                                  const std::vector<double>& cost, const AssignOptions& options,
                                  const std::string& name = "peaks");

// The checks assign_peaks makes on the list itself (exposed for the CLI to fail before loading a model).
void validate_peak_list(const std::vector<Peak>& peaks, int32_t num_carbons, const std::string& name);

// "S", "D", "T", "Q" for 0..3 attached H, "" when unknown.
const char* multiplicity_letter(int8_t mult);

}  // namespace larmor::chem
