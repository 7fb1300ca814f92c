// Predict-then-assign and the `larmor assign` output formats (see ob_assign.h for why it is built this way).
#include "chem/ob_assign.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <cstdio>
#include <utility>

#include "chem/align_data.h"
#include "engine/error.h"

namespace larmor {

using chem::CarbonClass;
using chem::Molecule;
using chem::Peak;
using chem::PeakAssignment;

namespace {

std::string fmt(double v, int digits) {
  if (!std::isfinite(v)) return "";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

std::string json_number(double v, int digits) { return std::isfinite(v) ? fmt(v, digits) : "null"; }

std::string join_atoms(const Molecule& mol, const std::vector<int32_t>& atoms, const char* sep) {
  std::string s;
  for (size_t i = 0; i < atoms.size(); ++i) {
    if (i) s.append(sep);
    s.append(std::to_string(input_atom_index(mol, atoms[i])));
  }
  return s;
}

// The title, else the SMILES, else the id.
std::string molecule_name(const Molecule& m) {
  if (!m.title.empty()) return m.title;
  return !m.smiles.empty() ? m.smiles : m.id;
}

// The environment text of a carbon: "CH3", "aromatic CH", "C=O", ...
std::string environment(const Molecule& mol, int32_t atom) { return atom_environment(mol, atom); }

// Carbons of classes that received no peak in assignment a.
std::vector<int32_t> unassigned_atoms(const AssignReport& r, const PeakAssignment& a) {
  std::vector<char> hit(r.classes.size(), 0);
  for (const chem::PeakMatch& m : a.matches) hit[m.cls] = 1;
  std::vector<int32_t> out;
  for (size_t c = 0; c < r.classes.size(); ++c)
    if (!hit[c]) out.insert(out.end(), r.classes[c].atoms.begin(), r.classes[c].atoms.end());
  return out;
}

// The total shown to users: the summed |peak - predicted| in ppm when the classes carry predictions (the L1
// cost without its tie-break term), else the method's summed cost.
double display_cost(const AssignReport& r, const PeakAssignment& a) {
  double sum = 0;
  for (const chem::PeakMatch& m : a.matches) {
    const double pred = r.classes[m.cls].predicted_ppm;
    if (!std::isfinite(pred)) return a.cost;
    sum += std::fabs(r.peaks[m.peak].shift - pred);
  }
  return sum;
}

AssignReport finish(const Molecule& mol, const std::vector<Peak>& peaks, std::vector<CarbonClass> classes,
                    const std::vector<double>& cost, const chem::AssignOptions& options, const std::string& method,
                    const std::string& peaks_name) {
  AssignReport r;
  r.molecule = mol;
  r.method = method;
  r.peaks_name = peaks_name;
  r.peaks = peaks;
  r.result = chem::assign_peaks(peaks, classes, cost, options, peaks_name);
  r.classes = std::move(classes);
  r.warnings = r.result.warnings;
  return r;
}

// The molecule's carbon classes, after checking the peak list against its carbon count (before any model runs).
std::vector<CarbonClass> checked_classes(const Molecule& mol, const std::vector<Peak>& peaks, const std::string& peaks_name) {
  std::vector<CarbonClass> classes = chem::carbon_classes(mol);
  int32_t carbons = 0;
  for (const CarbonClass& c : classes) carbons += static_cast<int32_t>(c.atoms.size());
  chem::validate_peak_list(peaks, carbons, peaks_name);
  return classes;
}

void require_13c_head(const ShiftPredictor& predictor) {
  if (!predictor.available_nuclei()[static_cast<size_t>(chem::Nucleus::C13)])
    throw Error("assign: the model '" + predictor.path() + "' has no 13C head");
}

}  // namespace

int32_t input_atom_index(const Molecule& mol, int32_t atom) {
  if (atom >= 0 && static_cast<size_t>(atom) < mol.input_index.size() && mol.input_index[atom] >= 0)
    return mol.input_index[atom];
  return atom;
}

AssignReport assign_with_costs(const Molecule& mol, const std::vector<Peak>& peaks, std::vector<CarbonClass> classes,
                               const std::vector<double>& cost, const chem::AssignOptions& options,
                               const std::string& method, const std::string& peaks_name) {
  return finish(mol, peaks, std::move(classes), cost, options, method, peaks_name);
}

std::vector<CarbonClass> predict_carbon_classes(ShiftPredictor& predictor, const Molecule& mol, chem::Solvent solvent,
                                                ShiftPrediction* prediction) {
  NucleusSet c13{};
  c13[static_cast<size_t>(chem::Nucleus::C13)] = true;
  ShiftPrediction p = predictor.predict(mol, solvent, c13);
  // The prediction's molecule has the same atoms in the same order (plus coordinates).
  std::vector<double> shift(static_cast<size_t>(p.molecule.num_atoms()), NAN);  // (atoms) 13C values on carbons
  for (const AtomShift& a : p.atoms)
    if (a.nucleus == chem::Nucleus::C13) shift[a.atom] = a.raw_ppm;
  std::vector<CarbonClass> classes = chem::predicted_carbon_classes(p.molecule, shift);
  if (prediction) *prediction = std::move(p);
  return classes;
}

std::vector<double> alignment_class_costs(AlignModel& model, const Molecule& mol, const std::vector<Peak>& peaks) {
  const std::vector<CarbonClass> classes = chem::carbon_classes(mol);

  // The graph side: every carbon of the molecule as an atom-level row (its ppm is not read at inference).
  std::vector<int32_t> atom_node;
  AlignMoleculeInput in = chem::align_graph_input(mol, &atom_node);
  std::vector<std::pair<int32_t, int32_t>> carbon_at_node;  // (node, atom), ascending node
  for (int32_t a = 0; a < mol.num_atoms(); ++a)
    if (mol.atoms[a].element == 6) carbon_at_node.emplace_back(atom_node.at(a), a);
  std::sort(carbon_at_node.begin(), carbon_at_node.end());
  std::vector<int32_t> row_of_atom(static_cast<size_t>(mol.num_atoms()), -1);
  for (const auto& [node, atom] : carbon_at_node) {
    row_of_atom[atom] = static_cast<int32_t>(in.carbon_nodes.size());
    in.carbon_nodes.push_back(node);
    in.carbon_ppm.push_back(0.0f);
    in.carbon_multiplicity.push_back(kAlignMultiplicityUnknown);
  }
  const AlignBatch batch = make_align_batch({in}, 1);

  std::vector<float> ppm;
  std::vector<int32_t> mult;
  for (const Peak& p : peaks) {
    ppm.push_back(static_cast<float>(p.shift));
    mult.push_back(p.mult >= 0 && p.mult <= 3 ? p.mult : kAlignMultiplicityUnknown);
  }
  const int64_t P = static_cast<int64_t>(peaks.size()), C = static_cast<int64_t>(carbon_at_node.size());
  std::vector<float> scores;  // (P, C)
  {
    NoGradGuard ng;
    const Tensor carbon = model.encode_graph(batch).carbon;  // (C, D)
    const Tensor peak = model.encode_peak_list(Tensor::from_vector<float>(ppm, {P}),
                                               Tensor::from_vector<int32_t>(mult, {P}));  // (P, D)
    Tensor s = matmul(peak, carbon, false, true);                                            // (P, C)
    scores = s.to(Device::cpu()).to(DType::F32).to_vector<float>();
  }
  const double scale = model.config().logit_scale;
  std::vector<double> scaled(scores.begin(), scores.end());
  for (double& v : scaled) v *= scale;
  std::vector<std::vector<int32_t>> members;  // score columns of each class
  for (const CarbonClass& c : classes) {
    members.emplace_back();
    for (int32_t a : c.atoms) members.back().push_back(row_of_atom.at(a));
  }
  return chem::class_costs_from_scores(scaled, P, C, members);  // (P, classes)
}

AssignReport assign_by_alignment(AlignModel& model, const Molecule& mol, const std::vector<Peak>& peaks,
                                 const chem::AssignOptions& options, const std::string& peaks_name,
                                 const std::string& model_path) {
  std::vector<CarbonClass> classes = checked_classes(mol, peaks, peaks_name);
  const std::vector<double> cost = alignment_class_costs(model, mol, peaks);
  AssignReport r = finish(mol, peaks, std::move(classes), cost, options, "align", peaks_name);
  r.model = model_path;
  return r;
}

AssignReport assign_by_both(ShiftPredictor& predictor, AlignModel& model, const Molecule& mol,
                            const std::vector<Peak>& peaks, chem::Solvent solvent, const chem::AssignOptions& options,
                            double weight, const std::string& peaks_name, const std::string& align_model_path) {
  if (!(weight >= 0) || std::isinf(weight)) throw Error("assign: the combine weight must be finite and >= 0");
  std::vector<CarbonClass> classes = checked_classes(mol, peaks, peaks_name);
  require_13c_head(predictor);
  const std::vector<double> align = alignment_class_costs(model, mol, peaks);  // (P, classes) nats
  ShiftPrediction p;
  classes = predict_carbon_classes(predictor, mol, solvent, &p);  // same classes, same order, with predictions
  std::vector<double> cost = chem::predicted_shift_costs(peaks, classes, options.l2_tie_break, peaks_name);  // ppm
  if (cost.size() != align.size()) throw Error("assign: the two methods disagree on the carbon classes");
  for (size_t i = 0; i < cost.size(); ++i) cost[i] += weight * align[i];
  AssignReport r = finish(p.molecule, peaks, std::move(classes), cost, options, "both", peaks_name);
  r.model = predictor.path() + " + " + align_model_path;
  r.solvent = solvent;
  if (!p.warning.empty()) r.warnings.insert(r.warnings.begin(), p.warning);
  return r;
}

AssignReport assign_by_prediction(ShiftPredictor& predictor, const Molecule& mol, const std::vector<Peak>& peaks,
                                  chem::Solvent solvent, const chem::AssignOptions& options,
                                  const std::string& peaks_name) {
  // Check the list against the molecule before the (slower) conformer and model run.
  std::vector<CarbonClass> classes = checked_classes(mol, peaks, peaks_name);
  require_13c_head(predictor);

  ShiftPrediction p;
  classes = predict_carbon_classes(predictor, mol, solvent, &p);
  AssignReport r = finish(p.molecule, peaks, std::move(classes), {}, options, "predict", peaks_name);
  r.model = predictor.path();
  r.solvent = solvent;
  if (!p.warning.empty()) r.warnings.insert(r.warnings.begin(), p.warning);
  return r;
}

// ---- output formats ----

std::string format_assign_table(const AssignReport& r) {
  const Molecule& mol = r.molecule;
  std::string s = molecule_name(mol);
  if (!mol.smiles.empty() && mol.smiles != s) s += "  " + mol.smiles;
  s += "\nmethod " + r.method;
  if (!r.model.empty()) s += " (" + r.model + ")";
  s += ", solvent " + std::string(chem::solvent_name(r.solvent)) + ", " + std::to_string(r.peaks.size()) +
       " peaks from " + r.peaks_name + ", multiplicities " + (r.result.multiplicity_used ? "used" : "not used") + "\n";
  if (r.result.assignments.empty()) return s + "no assignment\n";
  const PeakAssignment& best = r.result.assignments[0];
  char line[256];
  std::snprintf(line, sizeof line, "%8s %4s %5s  %-14s %-13s %9s %7s %6s\n", "peak", "mult", "atom", "equivalent",
                "environment", "predicted", "error", "conf");
  s += line;
  for (const chem::PeakMatch& m : best.matches) {
    const Peak& pk = r.peaks[m.peak];
    const CarbonClass& c = r.classes[m.cls];
    std::snprintf(line, sizeof line, "%8.2f %4s %5d  %-14s %-13s %9s %7s %6.3f\n", pk.shift,
                  chem::multiplicity_letter(pk.mult), input_atom_index(mol, m.atom), join_atoms(mol, c.atoms, ",").c_str(),
                  environment(mol, m.atom).c_str(), fmt(c.predicted_ppm, 2).c_str(),
                  fmt(pk.shift - c.predicted_ppm, 2).c_str(), m.confidence);
    s += line;
  }
  s.append("total cost ").append(fmt(display_cost(r, best), 2)).append(r.method == "predict" ? " ppm (sum |error|)" : "");
  if (best.extra_peaks > 0)
    s.append(", ").append(std::to_string(best.extra_peaks)).append(" peak(s) on an already used class");
  s.append("\n");
  const std::vector<int32_t> free_atoms = unassigned_atoms(r, best);
  if (!free_atoms.empty()) s.append("carbons without a peak: ").append(join_atoms(mol, free_atoms, ",")).append("\n");
  for (const std::string& w : r.warnings) s.append("warning: ").append(w).append("\n");
  if (r.result.assignments.size() > 1) {
    s.append("\n").append(std::to_string(r.result.assignments.size()));
    s.append(" best assignments (rank, total cost, change vs rank 1):\n");
    for (size_t k = 0; k < r.result.assignments.size(); ++k) {
      const PeakAssignment& a = r.result.assignments[k];
      std::string changes;
      for (size_t i = 0; i < a.matches.size(); ++i)
        if (a.matches[i].cls != best.matches[i].cls)
        {
          if (!changes.empty()) changes.append("; ");
          changes.append(fmt(r.peaks[i].shift, 2)).append(" -> ");
          changes.append(join_atoms(mol, r.classes[a.matches[i].cls].atoms, ","));
        }
      std::snprintf(line, sizeof line, "%4zu %9.2f  ", k + 1, display_cost(r, a));
      s += line;
      if (a.extra_peaks > 0) s.append("(").append(std::to_string(a.extra_peaks)).append(" extra on used classes) ");
      s.append(k == 0 ? std::string("best") : changes).append("\n");
    }
  }
  return s;
}

std::string format_assign_csv(const AssignReport& r) {
  const bool ranked = r.result.assignments.size() > 1;
  std::string s = "peak_ppm,multiplicity,atom_index,equivalent_atoms,predicted_ppm,error_ppm,confidence";
  s += ranked ? ",rank,total_cost\n" : "\n";
  for (size_t k = 0; k < r.result.assignments.size(); ++k) {
    const PeakAssignment& a = r.result.assignments[k];
    for (const chem::PeakMatch& m : a.matches) {
      const Peak& pk = r.peaks[m.peak];
      const CarbonClass& c = r.classes[m.cls];
      s.append(fmt(pk.shift, 2)).append(",").append(chem::multiplicity_letter(pk.mult)).append(",");
      s.append(std::to_string(input_atom_index(r.molecule, m.atom))).append(",");
      s.append(join_atoms(r.molecule, c.atoms, ";")).append(",");
      s.append(fmt(c.predicted_ppm, 2)).append(",").append(fmt(pk.shift - c.predicted_ppm, 2)).append(",");
      s.append(fmt(m.confidence, 4));
      if (ranked) s.append(",").append(std::to_string(k + 1)).append(",").append(fmt(display_cost(r, a), 3));
      s.append("\n");
    }
    if (!ranked) break;
  }
  return s;
}

std::string format_assign_json(const AssignReport& r) {
  const Molecule& mol = r.molecule;
  auto peaks_json = [&](const PeakAssignment& a) {
    std::string s = "[";
    for (size_t i = 0; i < a.matches.size(); ++i) {
      const chem::PeakMatch& m = a.matches[i];
      const Peak& pk = r.peaks[m.peak];
      const CarbonClass& c = r.classes[m.cls];
      s += std::string(i ? "," : "") + "{\"peak_index\":" + std::to_string(m.peak) +
           ",\"peak_ppm\":" + json_number(pk.shift, 3) + ",\"multiplicity\":\"" + chem::multiplicity_letter(pk.mult) +
           "\",\"atom_index\":" + std::to_string(input_atom_index(mol, m.atom)) + ",\"equivalent_atoms\":[" +
           join_atoms(mol, c.atoms, ",") + "],\"predicted_ppm\":" + json_number(c.predicted_ppm, 3) +
           ",\"error_ppm\":" + json_number(pk.shift - c.predicted_ppm, 3) +
           ",\"confidence\":" + json_number(m.confidence, 4) + "}";
    }
    return s + "]";
  };
  std::string s = "{\"molecule\":\"" + json_escape(molecule_name(mol)) + "\",\"smiles\":\"" + json_escape(mol.smiles) +
                  "\",\"method\":\"" + json_escape(r.method) + "\",\"model\":\"" + json_escape(r.model) +
                  "\",\"solvent\":\"" + chem::solvent_name(r.solvent) + "\",\"peaks_file\":\"" +
                  json_escape(r.peaks_name) + "\",\"multiplicity_used\":" + (r.result.multiplicity_used ? "true" : "false") +
                  ",\"warnings\":[";
  for (size_t i = 0; i < r.warnings.size(); ++i) s += std::string(i ? "," : "") + "\"" + json_escape(r.warnings[i]) + "\"";
  s += "]";
  if (!r.result.assignments.empty()) {
    const PeakAssignment& best = r.result.assignments[0];
    s += ",\"peaks\":" + peaks_json(best) + ",\"total_cost\":" + json_number(display_cost(r, best), 3) + ",\"unassigned_atoms\":[" +
         join_atoms(mol, unassigned_atoms(r, best), ",") + "],\"alternatives\":[";
    for (size_t k = 0; k < r.result.assignments.size(); ++k) {
      const PeakAssignment& a = r.result.assignments[k];
      s += std::string(k ? "," : "") + "{\"rank\":" + std::to_string(k + 1) + ",\"total_cost\":" + json_number(display_cost(r, a), 3) +
           ",\"objective\":" + json_number(a.objective, 3) + ",\"extra_peaks\":" + std::to_string(a.extra_peaks) +
           ",\"peaks\":" + peaks_json(a) + "}";
    }
    s += "]";
  }
  return s + "}";
}

}  // namespace larmor
