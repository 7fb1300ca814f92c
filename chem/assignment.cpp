// Optimal peak assignment (see assignment.h for the rules and why they were chosen).
//
// The solver adds rows one at a time. For each new row it runs Dijkstra over the columns with the reduced
// costs cost(r,c) - row_pot[r] - col_pot[c] (all >= 0), stepping from a reached column to the row that owns
// it, until a free column is reached; the potentials are then moved so the whole path becomes tight and the
// matching is flipped along it. Free columns never move their potential (it stays 0), so the potentials are
// an optimal dual of the rectangular LP and give the pruning bound used for confidences.
#include "chem/assignment.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <queue>
#include <set>
#include <utility>

#include "engine/error.h"

namespace larmor::chem {

// ---- general rectangular assignment ----

std::optional<LinearAssignment> solve_linear_assignment(const std::vector<double>& cost, int32_t rows, int32_t cols) {
  if (rows < 0 || cols < 0 || rows > cols)
    throw Error("assignment: need 0 <= rows <= cols, got " + std::to_string(rows) + " x " + std::to_string(cols));
  if (cost.size() != static_cast<size_t>(rows) * static_cast<size_t>(cols))
    throw Error("assignment: cost matrix has " + std::to_string(cost.size()) + " entries, expected " +
                std::to_string(rows) + " x " + std::to_string(cols));
  for (double v : cost)
    if (std::isnan(v) || v == -kForbiddenCost) throw Error("assignment: cost matrix holds NaN or -infinity");

  const double inf = kForbiddenCost;
  LinearAssignment out;
  out.row_potential.assign(rows, 0.0);
  out.col_potential.assign(cols, 0.0);
  std::vector<int32_t> col_owner(cols, -1);  // row matched to each column
  std::vector<double> dist(cols);            // shortest reduced-cost distance from the new row to each column
  std::vector<int32_t> came_from(cols);      // previous column on that path (-1: straight from the new row)
  std::vector<char> settled(cols);
  std::vector<int32_t> settled_cols;
  std::vector<double>& u = out.row_potential;
  std::vector<double>& v = out.col_potential;

  for (int32_t root = 0; root < rows; ++root) {
    std::fill(dist.begin(), dist.end(), inf);
    std::fill(came_from.begin(), came_from.end(), -1);
    std::fill(settled.begin(), settled.end(), 0);
    settled_cols.clear();
    int32_t row = root, from_col = -1, free_col = -1;
    double row_dist = 0;  // distance of `row` from the root
    while (free_col < 0) {
      const double* c = cost.data() + static_cast<size_t>(row) * cols;
      int32_t next = -1;
      double next_dist = inf;
      for (int32_t j = 0; j < cols; ++j) {
        if (settled[j]) continue;
        if (c[j] != inf) {
          const double d = row_dist + (c[j] - u[row] - v[j]);
          if (d < dist[j]) {
            dist[j] = d;
            came_from[j] = from_col;
          }
        }
        if (dist[j] < next_dist) {
          next_dist = dist[j];
          next = j;
        }
      }
      if (next < 0) return std::nullopt;  // no free column reachable: no complete finite assignment
      settled[next] = 1;
      settled_cols.push_back(next);
      if (col_owner[next] < 0) {
        free_col = next;
      } else {
        from_col = next;
        row = col_owner[next];
        row_dist = next_dist;
      }
    }
    // Potentials: every settled column j (and the row owning it) moves by D - dist[j], the root by D.
    const double total = dist[free_col];
    u[root] += total;
    for (int32_t j : settled_cols) {
      if (j == free_col) continue;
      const double shift = total - dist[j];
      v[j] -= shift;
      u[col_owner[j]] += shift;
    }
    // Flip the matching along the path back to the root.
    for (int32_t j = free_col; j >= 0;) {
      const int32_t prev = came_from[j];
      col_owner[j] = prev >= 0 ? col_owner[prev] : root;
      j = prev;
    }
  }
  out.row_to_col.assign(rows, -1);
  for (int32_t j = 0; j < cols; ++j)
    if (col_owner[j] >= 0) out.row_to_col[col_owner[j]] = j;
  for (int32_t r = 0; r < rows; ++r) out.cost += cost[static_cast<size_t>(r) * cols + out.row_to_col[r]];
  return out;
}

// ---- capacitated classes ----

namespace {

void check_class_problem(const ClassAssignmentProblem& p) {
  const size_t classes = p.capacity.size();
  if (p.rows < 0 || p.cost.size() != static_cast<size_t>(p.rows) * classes)
    throw Error("assignment: class cost matrix has " + std::to_string(p.cost.size()) + " entries, expected " +
                std::to_string(p.rows) + " x " + std::to_string(classes));
  for (int32_t c : p.capacity)
    if (c < 1) throw Error("assignment: class capacity must be >= 1");
  if (!(p.extra_penalty >= 0) || std::isinf(p.extra_penalty))
    throw Error("assignment: extra penalty must be finite and >= 0");
}

// Expands classes into slots: class c has capacity[c] columns; the first costs cost(r,c), the others
// cost(r,c) + extra_penalty. forced[r] >= 0 pins row r; excluded (row, class) pairs are forbidden.
struct SlotMatrix {
  std::vector<double> cost;
  std::vector<int32_t> slot_class;
  std::vector<char> first_slot;
  int32_t cols = 0;
};

SlotMatrix expand(const ClassAssignmentProblem& p, const std::vector<int32_t>& forced,
                  const std::vector<std::pair<int32_t, int32_t>>& excluded) {
  const int32_t classes = static_cast<int32_t>(p.capacity.size());
  SlotMatrix m;
  for (int32_t c = 0; c < classes; ++c)
    for (int32_t s = 0; s < p.capacity[c]; ++s) {
      m.slot_class.push_back(c);
      m.first_slot.push_back(s == 0);
    }
  m.cols = static_cast<int32_t>(m.slot_class.size());
  std::vector<double> class_cost = p.cost;
  for (const auto& [r, c] : excluded) class_cost[static_cast<size_t>(r) * classes + c] = kForbiddenCost;
  for (int32_t r = 0; r < static_cast<int32_t>(forced.size()); ++r)
    if (forced[r] >= 0)
      for (int32_t c = 0; c < classes; ++c)
        if (c != forced[r]) class_cost[static_cast<size_t>(r) * classes + c] = kForbiddenCost;
  m.cost.resize(static_cast<size_t>(p.rows) * m.cols);
  for (int32_t r = 0; r < p.rows; ++r)
    for (int32_t j = 0; j < m.cols; ++j) {
      const double c = class_cost[static_cast<size_t>(r) * classes + m.slot_class[j]];
      m.cost[static_cast<size_t>(r) * m.cols + j] = m.first_slot[j] ? c : c + p.extra_penalty;
    }
  return m;
}

std::optional<ClassAssignment> solve_slots(const ClassAssignmentProblem& p, const std::vector<int32_t>& forced,
                                           const std::vector<std::pair<int32_t, int32_t>>& excluded,
                                           LinearAssignment* duals = nullptr, SlotMatrix* slots = nullptr) {
  SlotMatrix m = expand(p, forced, excluded);
  if (p.rows > m.cols) return std::nullopt;
  std::optional<LinearAssignment> a = solve_linear_assignment(m.cost, p.rows, m.cols);
  if (!a) return std::nullopt;
  ClassAssignment out;
  out.row_to_class.resize(p.rows);
  const int32_t classes = static_cast<int32_t>(p.capacity.size());
  std::vector<int32_t> used(classes, 0);
  for (int32_t r = 0; r < p.rows; ++r) {
    const int32_t c = m.slot_class[a->row_to_col[r]];
    out.row_to_class[r] = c;
    out.cost += p.cost[static_cast<size_t>(r) * classes + c];
    if (used[c]++ > 0) ++out.extra_rows;
  }
  out.objective = out.cost + p.extra_penalty * out.extra_rows;
  if (duals) *duals = std::move(*a);
  if (slots) *slots = std::move(m);
  return out;
}

}  // namespace

double class_assignment_objective(const ClassAssignmentProblem& p, const std::vector<int32_t>& row_to_class) {
  const int32_t classes = static_cast<int32_t>(p.capacity.size());
  if (static_cast<int32_t>(row_to_class.size()) != p.rows) return kForbiddenCost;
  std::vector<int32_t> used(classes, 0);
  double total = 0;
  for (int32_t r = 0; r < p.rows; ++r) {
    const int32_t c = row_to_class[r];
    if (c < 0 || c >= classes || ++used[c] > p.capacity[c]) return kForbiddenCost;
    total += p.cost[static_cast<size_t>(r) * classes + c] + (used[c] > 1 ? p.extra_penalty : 0.0);
  }
  return total;
}

std::optional<ClassAssignment> solve_class_assignment(const ClassAssignmentProblem& p,
                                                      const std::vector<int32_t>& forced) {
  check_class_problem(p);
  return solve_slots(p, forced, {});
}

std::vector<ClassAssignment> k_best_class_assignments(const ClassAssignmentProblem& p, int32_t k,
                                                      const std::vector<int32_t>& twin_group) {
  check_class_problem(p);
  std::vector<ClassAssignment> out;
  if (k <= 0) return out;
  if (!twin_group.empty() && static_cast<int32_t>(twin_group.size()) != p.rows)
    throw Error("assignment: twin_group must have one entry per row");

  // A node of Murty's partition: the maps with these rows pinned and these (row, class) pairs forbidden, and
  // the best map among them.
  struct Node {
    std::vector<int32_t> forced;
    std::vector<std::pair<int32_t, int32_t>> excluded;
    ClassAssignment best;
    int64_t order = 0;  // creation order: ties pop in a deterministic order
  };
  auto worse = [](const Node& a, const Node& b) {
    return a.best.objective != b.best.objective ? a.best.objective > b.best.objective : a.order > b.order;
  };
  std::priority_queue<Node, std::vector<Node>, decltype(worse)> queue(worse);
  int64_t created = 0;
  {
    Node root;
    root.forced.assign(p.rows, -1);
    std::optional<ClassAssignment> best = solve_slots(p, root.forced, {});
    if (!best) return out;
    root.best = std::move(*best);
    root.order = created++;
    queue.push(std::move(root));
  }

  // Canonical key up to permuting twins: per twin group, the sorted classes of its rows.
  auto key_of = [&](const std::vector<int32_t>& map) {
    if (twin_group.empty()) return map;
    std::map<int32_t, std::vector<int32_t>> by_group;
    for (int32_t r = 0; r < p.rows; ++r) by_group[twin_group[r]].push_back(map[r]);
    std::vector<int32_t> key;
    for (auto& [g, cls] : by_group) {
      std::sort(cls.begin(), cls.end());
      key.push_back(-1 - g);
      key.insert(key.end(), cls.begin(), cls.end());
    }
    return key;
  };
  std::set<std::vector<int32_t>> seen;
  const int64_t max_pops = std::max<int64_t>(1000, 50 * static_cast<int64_t>(k));
  int64_t pops = 0;

  while (!queue.empty() && static_cast<int32_t>(out.size()) < k && pops++ < max_pops) {
    Node node = queue.top();
    queue.pop();
    if (seen.insert(key_of(node.best.row_to_class)).second) out.push_back(node.best);
    // Children: for each free row t in turn, pin the rows before it to this map and forbid row t's class.
    std::vector<int32_t> forced = node.forced;
    for (int32_t r = 0; r < p.rows; ++r) {
      if (node.forced[r] >= 0) continue;
      const int32_t cls = node.best.row_to_class[r];
      std::vector<std::pair<int32_t, int32_t>> excluded = node.excluded;
      excluded.emplace_back(r, cls);
      if (std::optional<ClassAssignment> best = solve_slots(p, forced, excluded)) {
        Node child;
        child.forced = forced;
        child.excluded = std::move(excluded);
        child.best = std::move(*best);
        child.order = created++;
        queue.push(std::move(child));
      }
      forced[r] = cls;
    }
  }
  return out;
}

// ---- the NMR problem ----

const char* multiplicity_letter(int8_t mult) {
  switch (mult) {
    case 0: return "S";
    case 1: return "D";
    case 2: return "T";
    case 3: return "Q";
    default: return "";
  }
}

std::vector<CarbonClass> carbon_classes(const Molecule& mol) {
  std::map<int32_t, size_t> index_of_class;
  std::vector<CarbonClass> out;
  for (int32_t i = 0; i < mol.num_atoms(); ++i) {
    const Atom& a = mol.atoms[i];
    if (a.element != 6) continue;
    // An atom without a symmetry class is its own class.
    const int32_t key = a.symmetry_class >= 0 ? a.symmetry_class : -1 - i;
    auto [it, fresh] = index_of_class.emplace(key, out.size());
    if (fresh) {
      out.emplace_back();
      out.back().num_h = a.num_h;
    }
    out[it->second].atoms.push_back(i);
  }
  if (out.empty()) throw Error(mol.id + ": the molecule has no carbon atom to assign 13C peaks to");
  return out;
}

void validate_peak_list(const std::vector<Peak>& peaks, int32_t num_carbons, const std::string& name) {
  if (peaks.empty()) throw Error(name + ": empty peak list (no shifts found)");
  for (size_t i = 0; i < peaks.size(); ++i) {
    const double s = peaks[i].shift;
    if (!std::isfinite(s))
      throw Error(name + ": peak " + std::to_string(i + 1) + " has no finite shift");
    if (s < -50.0 || s > 400.0) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "%g", s);
      throw Error(name + ": peak " + std::to_string(i + 1) + " at " + buf +
                  " ppm is outside the 13C range -50..400 ppm");
    }
    if (peaks[i].mult != kMultUnknown && (peaks[i].mult < 0 || peaks[i].mult > 3))
      throw Error(name + ": peak " + std::to_string(i + 1) + " has a multiplicity outside 0..3 attached H");
  }
  if (static_cast<int64_t>(peaks.size()) > num_carbons)
    throw Error(name + ": " + std::to_string(peaks.size()) + " peaks but the molecule has only " +
                std::to_string(num_carbons) + " carbon" + (num_carbons == 1 ? "" : "s") +
                " (at most one peak per carbon)");
}

namespace {

// Why the multiplicity constraint cannot be met (peaks of one multiplicity outnumber the carbons with that
// many H; the groups are disjoint, so this is exactly Hall's condition), or "" when it can.
std::string multiplicity_conflict(const std::vector<Peak>& peaks, const std::vector<CarbonClass>& classes) {
  int32_t peak_count[4] = {0, 0, 0, 0}, carbon_count[4] = {0, 0, 0, 0};
  for (const Peak& pk : peaks)
    if (pk.mult >= 0 && pk.mult <= 3) ++peak_count[pk.mult];
  for (const CarbonClass& c : classes)
    if (c.num_h >= 0 && c.num_h <= 3) carbon_count[c.num_h] += static_cast<int32_t>(c.atoms.size());
  std::string why;
  static const char* const kind[4] = {"C", "CH", "CH2", "CH3"};
  for (int m = 0; m < 4; ++m)
    if (peak_count[m] > carbon_count[m]) {
      if (!why.empty()) why += ", ";
      why += std::to_string(peak_count[m]) + " " + multiplicity_letter(static_cast<int8_t>(m)) + " peak" +
             (peak_count[m] == 1 ? "" : "s") + " but " + std::to_string(carbon_count[m]) + " " + kind[m] +
             " carbon" + (carbon_count[m] == 1 ? "" : "s");
    }
  return why;
}

}  // namespace

std::vector<double> predicted_shift_costs(const std::vector<Peak>& peaks, const std::vector<CarbonClass>& classes,
                                          double l2_tie_break, const std::string& name) {
  for (const CarbonClass& c : classes)
    if (!std::isfinite(c.predicted_ppm))
      throw Error(name + ": carbon class of atom " + std::to_string(c.atoms.empty() ? -1 : c.atoms[0]) +
                  " has no predicted shift (needed for the L1 cost)");
  const size_t G = classes.size();
  std::vector<double> cost(peaks.size() * G);
  for (size_t r = 0; r < peaks.size(); ++r)
    for (size_t c = 0; c < G; ++c) {
      const double d = classes[c].predicted_ppm - peaks[r].shift;
      cost[r * G + c] = std::fabs(d) + l2_tie_break * d * d;
    }
  return cost;
}

PeakAssignmentResult assign_peaks(const std::vector<Peak>& peaks, const std::vector<CarbonClass>& classes,
                                  const std::vector<double>& cost, const AssignOptions& options,
                                  const std::string& name) {
  if (classes.empty()) throw Error(name + ": no carbon classes to assign peaks to");
  int32_t num_carbons = 0;
  for (const CarbonClass& c : classes) {
    if (c.atoms.empty()) throw Error(name + ": a carbon class without atoms");
    num_carbons += static_cast<int32_t>(c.atoms.size());
  }
  validate_peak_list(peaks, num_carbons, name);
  if (!(options.temperature > 0) || std::isinf(options.temperature))
    throw Error("assign: the confidence temperature must be a positive number");
  if (options.k_best < 1) throw Error("assign: k must be >= 1");
  if (!(options.l2_tie_break >= 0) || std::isinf(options.l2_tie_break))
    throw Error("assign: the L2 tie-break weight must be finite and >= 0");

  const int32_t rows = static_cast<int32_t>(peaks.size());
  const int32_t num_classes = static_cast<int32_t>(classes.size());
  ClassAssignmentProblem problem;
  problem.rows = rows;
  problem.extra_penalty = options.extra_peak_penalty;
  for (const CarbonClass& c : classes) problem.capacity.push_back(static_cast<int32_t>(c.atoms.size()));
  if (cost.empty()) {
    problem.cost = predicted_shift_costs(peaks, classes, options.l2_tie_break, name);
  } else {
    if (cost.size() != static_cast<size_t>(rows) * num_classes)
      throw Error(name + ": cost matrix has " + std::to_string(cost.size()) + " entries, expected " +
                  std::to_string(rows) + " peaks x " + std::to_string(num_classes) + " classes");
    for (double v : cost)
      if (!std::isfinite(v)) throw Error(name + ": the method's cost matrix holds a non-finite value");
    problem.cost = cost;
  }

  PeakAssignmentResult result;
  bool any_mult = false;
  for (const Peak& pk : peaks) any_mult = any_mult || pk.mult != kMultUnknown;
  if (any_mult && options.use_multiplicity) {
    const std::string conflict = multiplicity_conflict(peaks, classes);
    if (conflict.empty()) {
      for (int32_t r = 0; r < rows; ++r)
        if (peaks[r].mult != kMultUnknown)
          for (int32_t c = 0; c < num_classes; ++c)
            if (classes[c].num_h != peaks[r].mult) problem.cost[static_cast<size_t>(r) * num_classes + c] = kForbiddenCost;
      result.multiplicity_used = true;
    } else {
      result.warnings.push_back("multiplicities ignored: " + conflict);
    }
  }

  // Peaks with the same shift and multiplicity are interchangeable.
  std::vector<int32_t> twin(rows);
  for (int32_t r = 0; r < rows; ++r) {
    twin[r] = r;
    for (int32_t q = 0; q < r; ++q)
      if (peaks[q].shift == peaks[r].shift && peaks[q].mult == peaks[r].mult) {
        twin[r] = twin[q];
        break;
      }
  }

  LinearAssignment duals;
  SlotMatrix slots;
  std::optional<ClassAssignment> best = solve_slots(problem, {}, {}, &duals, &slots);
  if (!best) throw Error(name + ": no assignment exists (internal: capacities checked above)");

  // Min-marginals m(r, c): best objective with row r forced to class c. Lower bound from the duals:
  // m(r, c) >= best + min over the class's slots of the reduced cost; classes whose bound is far beyond the
  // temperature get probability 0 without a solve.
  const double cutoff = 40.0 * options.temperature;
  if (options.confidences) result.class_probability.assign(static_cast<size_t>(rows) * num_classes, 0.0);
  for (int32_t r = 0; r < rows && options.confidences; ++r) {
    std::vector<double> gap(num_classes, kForbiddenCost);
    for (int32_t c = 0; c < num_classes; ++c) {
      if (c == best->row_to_class[r]) {
        gap[c] = 0;
        continue;
      }
      double bound = kForbiddenCost;
      for (int32_t j = 0; j < slots.cols; ++j)
        if (slots.slot_class[j] == c)
          bound = std::min(bound, slots.cost[static_cast<size_t>(r) * slots.cols + j] - duals.row_potential[r] -
                                      duals.col_potential[j]);
      if (!(bound < cutoff)) continue;
      std::vector<int32_t> forced(rows, -1);
      forced[r] = c;
      if (std::optional<ClassAssignment> alt = solve_slots(problem, forced, {}))
        gap[c] = std::max(0.0, alt->objective - best->objective);
    }
    double z = 0;
    for (int32_t c = 0; c < num_classes; ++c)
      if (std::isfinite(gap[c])) z += std::exp(-gap[c] / options.temperature);
    for (int32_t c = 0; c < num_classes; ++c)
      if (std::isfinite(gap[c]))
        result.class_probability[static_cast<size_t>(r) * num_classes + c] = std::exp(-gap[c] / options.temperature) / z;
  }

  std::vector<ClassAssignment> maps;
  if (options.k_best == 1) maps.push_back(*best);
  else maps = k_best_class_assignments(problem, options.k_best, twin);

  for (const ClassAssignment& m : maps) {
    PeakAssignment a;
    a.objective = m.objective;
    a.cost = m.cost;
    a.extra_peaks = m.extra_rows;
    std::vector<int32_t> used(num_classes, 0);
    for (int32_t r = 0; r < rows; ++r) {
      PeakMatch pm;
      pm.peak = r;
      pm.cls = m.row_to_class[r];
      pm.atom = classes[pm.cls].atoms[static_cast<size_t>(used[pm.cls]++)];
      pm.cost = problem.cost[static_cast<size_t>(r) * num_classes + pm.cls];
      // The classes holding this peak or an identical twin count as this peak's answer.
      std::vector<char> answer(num_classes, 0);
      for (int32_t q = 0; q < rows; ++q)
        if (twin[q] == twin[r]) answer[m.row_to_class[q]] = 1;
      double conf = 0;
      for (int32_t c = 0; c < num_classes && options.confidences; ++c)
        if (answer[c]) conf += result.class_probability[static_cast<size_t>(r) * num_classes + c];
      pm.confidence = options.confidences ? std::clamp(conf, 0.0, 1.0) : std::numeric_limits<double>::quiet_NaN();
      a.matches.push_back(pm);
    }
    result.assignments.push_back(std::move(a));
  }
  return result;
}

std::vector<CarbonClass> predicted_carbon_classes(const Molecule& mol, const std::vector<double>& atom_ppm) {
  if (atom_ppm.size() != static_cast<size_t>(mol.num_atoms()))
    throw Error("predicted carbon classes: '" + mol.id + "' has " + std::to_string(mol.num_atoms()) + " atoms but " +
                std::to_string(atom_ppm.size()) + " predictions");
  std::vector<CarbonClass> classes = carbon_classes(mol);
  for (CarbonClass& c : classes) {
    double sum = 0;
    for (int32_t atom : c.atoms) sum += atom_ppm[static_cast<size_t>(atom)];
    c.predicted_ppm = sum / static_cast<double>(c.atoms.size());
  }
  return classes;
}

std::vector<double> class_costs_from_scores(const std::vector<double>& scores, int64_t peaks, int64_t carbons,
                                            const std::vector<std::vector<int32_t>>& classes) {
  if (peaks < 0 || carbons < 0 || scores.size() != static_cast<size_t>(peaks * carbons))
    throw Error("class_costs_from_scores: " + std::to_string(scores.size()) + " scores for " + std::to_string(peaks) +
                " peaks x " + std::to_string(carbons) + " carbons");
  const size_t K = classes.size();
  for (size_t k = 0; k < K; ++k) {
    if (classes[k].empty()) throw Error("class_costs_from_scores: class " + std::to_string(k) + " has no carbon");
    for (int32_t c : classes[k])
      if (c < 0 || c >= carbons)
        throw Error("class_costs_from_scores: class " + std::to_string(k) + " names carbon " + std::to_string(c) +
                    " outside [0, " + std::to_string(carbons) + ")");
  }
  std::vector<double> cost(static_cast<size_t>(peaks) * K);  // (peaks, K)
  std::vector<double> best(K);
  for (int64_t p = 0; p < peaks; ++p) {
    const double* row = &scores[static_cast<size_t>(p * carbons)];
    for (size_t k = 0; k < K; ++k) {
      best[k] = -std::numeric_limits<double>::infinity();
      for (int32_t c : classes[k]) best[k] = std::max(best[k], row[c]);
    }
    const double mx = *std::max_element(best.begin(), best.end());
    double z = 0;
    for (double b : best) z += std::exp(b - mx);
    const double lse = mx + std::log(z);
    for (size_t k = 0; k < K; ++k) cost[static_cast<size_t>(p) * K + k] = lse - best[k];  // -log softmax_k
  }
  return cost;
}

}  // namespace larmor::chem
