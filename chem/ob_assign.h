// Peak assignment for embedding and for `larmor assign`: a molecule and a 13C peak list in, the peak ->
// carbon assignment with confidences (and the k best alternatives) out, plus its table/CSV/JSON text.
//
// Why it is built this way:
//   - A method only has to produce a cost matrix (peaks x carbon symmetry classes); the assignment itself
//     (capacities, multiplicities, confidences, Murty's k best: chem/assignment.h) and the output formats are
//     shared. `predict` = the shift predictor's 13C shifts with the L1 cost |predicted - ppm|; a second
//     method (the alignment model) plugs in through assign_with_costs.
//   - Open Babel side (ob_ prefix) because the predictor needs a conformer; the report itself is plain data.
//   - Atom indices in the output are 0-based in the input record's order (Molecule::input_index, so a salt's
//     dropped counter-ion does not shift them). When a class takes several peaks, the j-th of them (in peak
//     order) is given the class's j-th atom, so per-carbon peak lists come out with distinct atoms.
#pragma once
#include <string>
#include <vector>

#include "chem/assignment.h"
#include "chem/molecule.h"
#include "chem/nmr.h"
#include "chem/ob_predict.h"
#include "layers/align_model.h"

namespace larmor {

struct AssignReport {
  chem::Molecule molecule;                // the structure the indices refer to
  std::string method;                     // "predict", ...
  std::string model;                      // the model file, when the method used one
  chem::Solvent solvent = chem::Solvent::Unknown;
  std::string peaks_name;                 // the peak list's file name
  std::vector<chem::Peak> peaks;
  std::vector<chem::CarbonClass> classes; // with predicted_ppm for `predict`
  chem::PeakAssignmentResult result;
  std::vector<std::string> warnings;      // conformer notes and the assignment's warnings
};

// The shift predictor's 13C shifts of mol as its carbon classes (chem::predicted_carbon_classes: class means),
// in the order of chem::carbon_classes. `prediction` (optional) receives the whole prediction (the molecule
// with its conformer, warnings). Throws larmor::Error when the model cannot read the molecule.
std::vector<chem::CarbonClass> predict_carbon_classes(ShiftPredictor& predictor, const chem::Molecule& mol,
                                                      chem::Solvent solvent, ShiftPrediction* prediction = nullptr);

// The shift predictor's 13C shifts (class means), then the optimal assignment. Throws larmor::Error for a bad
// peak list (see chem::assign_peaks), a model without a 13C head, or a molecule the model cannot read.
AssignReport assign_by_prediction(ShiftPredictor& predictor, const chem::Molecule& mol,
                                  const std::vector<chem::Peak>& peaks, chem::Solvent solvent,
                                  const chem::AssignOptions& options, const std::string& peaks_name = "peaks");

// The alignment model (K-M3AID): every carbon's node embedding against every peak's embedding, s = c e_peak .
// e_carbon (c = the model's logit_scale); a class scores its best carbon, and the cost of peak p on class k
// is -log softmax_k(s_pk) (nats), so AssignOptions::temperature = 1 makes the confidences the model's own
// probabilities reweighted by the assignment constraints. The model must be in eval mode.
AssignReport assign_by_alignment(AlignModel& model, const chem::Molecule& mol, const std::vector<chem::Peak>& peaks,
                                 const chem::AssignOptions& options, const std::string& peaks_name = "peaks",
                                 const std::string& model_path = "");

// The alignment model's cost of every peak on every carbon class (the matrix assign_by_alignment solves):
// (peaks, classes) row-major in the order of chem::carbon_classes(mol), nats.
std::vector<double> alignment_class_costs(AlignModel& model, const chem::Molecule& mol,
                                          const std::vector<chem::Peak>& peaks);

// Both methods: cost(p, k) = |predicted_k - ppm_p| (+ the L1 tie-break term) + weight * the alignment cost
// (weight in ppm per nat; 1 was chosen on the valid split, where it beat either method alone: `larmor eval
// align` row "shift predictor + alignment + optimal"). Classes carry the predicted shifts for display.
AssignReport assign_by_both(ShiftPredictor& predictor, AlignModel& model, const chem::Molecule& mol,
                            const std::vector<chem::Peak>& peaks, chem::Solvent solvent,
                            const chem::AssignOptions& options, double weight = 1.0,
                            const std::string& peaks_name = "peaks", const std::string& align_model_path = "");

// Any method that scores peaks against the molecule's carbon classes: cost is (peaks, classes) row-major in
// the order of chem::carbon_classes(mol) (lower = better). `classes` may carry predicted shifts for display.
AssignReport assign_with_costs(const chem::Molecule& mol, const std::vector<chem::Peak>& peaks,
                               std::vector<chem::CarbonClass> classes, const std::vector<double>& cost,
                               const chem::AssignOptions& options, const std::string& method,
                               const std::string& peaks_name = "peaks");

// The atom index as the user gave it (input record order).
int32_t input_atom_index(const chem::Molecule& mol, int32_t atom);

// ---- output formats ----
// Readable table: one line per peak (ppm, multiplicity, atom, equivalent atoms, environment, predicted,
// error = peak - predicted, confidence), the carbons left without a peak, warnings, and with k > 1 the
// alternatives with their total cost and the peaks that moved.
std::string format_assign_table(const AssignReport& r);
// CSV with header. One row per peak:
//   peak_ppm,multiplicity,atom_index,equivalent_atoms,predicted_ppm,error_ppm,confidence
// (equivalent_atoms ';'-separated, predicted/error empty when the method has no shifts). When the report holds
// k > 1 assignments, two columns rank,total_cost follow (total_cost: summed |peak - predicted| in ppm when the
// method predicts shifts, else its summed cost) and every assignment's rows are listed, best first;
// an alternative row's confidence is that peak's probability of being on the alternative's class.
std::string format_assign_csv(const AssignReport& r);
// JSON object: molecule, smiles, method, model, solvent, multiplicity_used, warnings, peaks[{peak_index,
// peak_ppm, multiplicity, atom_index, equivalent_atoms, predicted_ppm, error_ppm, confidence}], total_cost,
// unassigned_atoms, alternatives[{rank, total_cost, objective, extra_peaks, peaks[...]}].
std::string format_assign_json(const AssignReport& r);

}  // namespace larmor
