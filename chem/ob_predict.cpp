// ShiftPredictor and the `larmor predict` output formats (see ob_predict.h for why it is built this way).
#include "chem/ob_predict.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "chem/features.h"
#include "chem/ob_molecule.h"
#include "chem/shift_training.h"
#include "chem/svg_plots.h"
#include "engine/error.h"
#include "engine/tensor.h"

namespace larmor {

using chem::Molecule;
using chem::Nucleus;

namespace {

[[noreturn]] void predict_fail(const std::string& what) { throw Error("predict: " + what); }

std::string fmt_shift(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
int shift_digits(Nucleus n) { return n == Nucleus::H1 ? 2 : 1; }

std::string join_ints(const std::vector<int32_t>& v, const char* sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + std::to_string(v[i]);
  return s;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) o += (c == '"') ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}

}  // namespace

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      case '\r': o += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          o += b;
        } else {
          o += c;
        }
    }
  }
  return o;
}

// ---- nuclei ----
NucleusSet parse_nucleus_set(const std::string& text) {
  NucleusSet s{};
  std::stringstream ss(text);
  std::string tok;
  bool any = false;
  while (std::getline(ss, tok, ',')) {
    if (tok == "both") {
      s[0] = s[1] = true;
    } else if (tok == "all") {
      s.fill(true);
    } else if (auto n = chem::parse_nucleus(tok)) {
      s[static_cast<int>(*n)] = true;
    } else {
      predict_fail("unknown nucleus '" + tok + "' (expected 13C, 1H, 19F, 31P, both or all)");
    }
    any = true;
  }
  if (!any) predict_fail("empty nucleus list");
  return s;
}

// ---- environment ----
std::string atom_environment(const Molecule& mol, int32_t atom) {
  const chem::Atom& a = mol.atoms.at(static_cast<size_t>(atom));
  const std::string sym = chem::element_symbol(a.element);
  auto with_h = [&](const std::string& base) {
    if (a.num_h == 0) return base;
    return base + "H" + (a.num_h > 1 ? std::to_string(a.num_h) : "");
  };
  if (a.element != 6) return with_h(sym);
  if (a.aromatic) return "aromatic " + with_h("C");
  bool double_o = false, double_any = false, triple = false;
  for (const chem::Bond& b : mol.bonds) {
    if (b.a != atom && b.b != atom) continue;
    const int other = b.a == atom ? b.b : b.a;
    if (b.type == chem::BondType::Double) {
      double_any = true;
      if (mol.atoms[other].element == 8) double_o = true;
    } else if (b.type == chem::BondType::Triple) {
      triple = true;
    }
  }
  if (double_o) return a.num_h ? "CH=O" : "C=O";
  if (triple) return "#" + with_h("C");
  if (double_any || a.hybridization == chem::Hybridization::SP2) return "=" + with_h("C");
  return with_h("C");
}

// ---- predictor ----
ShiftPredictor::ShiftPredictor(const std::string& checkpoint, const chem::ConformerOptions& conformer)
    : path_(checkpoint), conformer_(conformer) {
  if (!std::filesystem::exists(checkpoint)) predict_fail("model file '" + checkpoint + "' does not exist");
  model_ = std::make_unique<chem::LoadedShiftModel>(chem::load_shift_model(checkpoint));
  model_->model->eval();
}
ShiftPredictor::~ShiftPredictor() = default;
ShiftPredictor::ShiftPredictor(ShiftPredictor&&) noexcept = default;
ShiftPredictor& ShiftPredictor::operator=(ShiftPredictor&&) noexcept = default;

NucleusSet ShiftPredictor::available_nuclei() const { return model_->model->config().nuclei; }

ShiftPrediction ShiftPredictor::predict_smiles(const std::string& smiles, chem::Solvent solvent,
                                               const NucleusSet& nuclei, const std::string& id) {
  return predict(chem::molecule_from_smiles(smiles, id), solvent, nuclei);
}

ShiftPrediction ShiftPredictor::predict(const Molecule& mol, chem::Solvent solvent, const NucleusSet& nuclei) {
  const std::string who = mol.id.empty() ? std::string("molecule") : mol.id;
  const NucleusSet heads = available_nuclei();
  for (int n = 0; n < chem::kNumNuclei; ++n)
    if (nuclei[n] && !heads[n])
      throw Error(who + ": the model '" + path_ + "' has no " + chem::nucleus_name(static_cast<Nucleus>(n)) +
                  " head");
  if (mol.atoms.empty()) throw Error(who + ": empty molecule");

  ShiftPrediction p;
  p.molecule = mol;
  p.solvent = solvent;
  if (!mol.has_3d()) {
    const chem::ConformerResult c = chem::generate_conformer(chem::molecule_to_molblock(mol), conformer_);
    if (!c.ok) throw Error(who + ": no 3-D conformer: " + c.error);
    if (c.coords.size() != mol.atoms.size())
      throw Error(who + ": conformer has " + std::to_string(c.coords.size()) + " atoms, molecule " +
                  std::to_string(mol.atoms.size()));
    p.molecule.coords = c.coords;
    p.conformer_generated = true;
    p.warning = c.warning;
  }
  const Molecule& m = p.molecule;
  const chem::MoleculeFeatures f = chem::featurize(m);
  const int32_t solvent_class = model_->data_options.use_solvent ? static_cast<int32_t>(solvent) : 0;
  const ShiftBatch batch = chem::pad_shift_inputs({{&f.tokens, &f.coords, solvent_class, 0, &f.token_features, &f.token_pairs}});  // (1, atoms + 2)

  std::vector<float> z;  // (atoms + 2, 4) standardised
  {
    NoGradGuard ng;
    model_->model->eval();
    const ShiftOutput out = model_->model->forward(batch, /*with_delta_pair=*/false);
    z = out.shifts.to_vector<float>();
  }
  const ShiftStandardizer& st = model_->standardizer;
  const int32_t num_atoms = m.num_atoms();

  for (int n = 0; n < chem::kNumNuclei; ++n) {
    if (!nuclei[n]) continue;
    const Nucleus nuc = static_cast<Nucleus>(n);
    const int element = chem::nucleus_element(nuc);
    std::vector<double> raw(static_cast<size_t>(num_atoms), 0.0);
    std::map<int32_t, std::vector<int32_t>> classes;  // symmetry class -> atoms (ascending)
    for (int32_t i = 0; i < num_atoms; ++i) {
      if (m.atoms[i].element != element) continue;
      raw[i] = st.to_ppm(n, z[static_cast<size_t>((i + 1) * kShiftNuclei + n)]);
      // an atom without a class (hand-built molecule) is its own class
      const int32_t cls = m.atoms[i].symmetry_class >= 0 ? m.atoms[i].symmetry_class : -1 - i;
      classes[cls].push_back(i);
    }
    std::vector<ShiftGroup> groups;
    std::vector<AtomShift> atoms;
    for (const auto& [cls, members] : classes) {
      double mean = 0;
      for (int32_t i : members) mean += raw[i];
      mean /= static_cast<double>(members.size());
      ShiftGroup g;
      g.nucleus = nuc;
      g.atoms = members;
      g.shift_ppm = mean;
      for (int32_t i : members) {
        const int32_t h = nuc == Nucleus::H1 && m.atoms[i].heavy >= 0 ? m.atoms[i].heavy : i;
        if (std::find(g.heavy_atoms.begin(), g.heavy_atoms.end(), h) == g.heavy_atoms.end()) g.heavy_atoms.push_back(h);
        AtomShift a;
        a.atom = i;
        a.heavy = h;
        a.nucleus = nuc;
        a.shift_ppm = mean;
        a.raw_ppm = raw[i];
        a.equivalent = members;
        atoms.push_back(std::move(a));
      }
      std::sort(g.heavy_atoms.begin(), g.heavy_atoms.end());
      g.environment = atom_environment(m, g.heavy_atoms.front());
      groups.push_back(std::move(g));
    }
    std::sort(atoms.begin(), atoms.end(), [](const AtomShift& a, const AtomShift& b) { return a.atom < b.atom; });
    std::sort(groups.begin(), groups.end(), [](const ShiftGroup& a, const ShiftGroup& b) {
      return a.heavy_atoms.front() != b.heavy_atoms.front() ? a.heavy_atoms.front() < b.heavy_atoms.front()
                                                            : a.atoms.front() < b.atoms.front();
    });
    p.atoms.insert(p.atoms.end(), atoms.begin(), atoms.end());
    p.groups.insert(p.groups.end(), groups.begin(), groups.end());
  }
  return p;
}

// ---- formats ----
std::string prediction_name(const ShiftPrediction& p) {
  if (!p.molecule.title.empty()) return p.molecule.title;
  return p.molecule.id;
}

std::string format_table(const ShiftPrediction& p) {
  const Molecule& m = p.molecule;
  std::string s = "# " + prediction_name(p);
  if (!m.smiles.empty()) s += "  " + m.smiles;
  s += std::string("  (solvent ") + chem::solvent_name(p.solvent) + ")\n";
  char line[256];
  int last = -1;
  for (const ShiftGroup& g : p.groups) {
    const int n = static_cast<int>(g.nucleus);
    if (n != last) {
      std::snprintf(line, sizeof line, "%-5s %-16s %-4s %-22s %10s\n", chem::nucleus_name(g.nucleus),
                    g.nucleus == Nucleus::H1 ? "on atoms" : "atoms", "el", "environment", "shift/ppm");
      s += line;
      last = n;
    }
    const bool h = g.nucleus == Nucleus::H1;
    std::string where = join_ints(g.heavy_atoms, ",");
    std::string el = chem::element_symbol(m.atoms[g.heavy_atoms.front()].element);
    std::string env = g.environment;
    if (h) env += " (" + std::to_string(g.atoms.size()) + "H)";
    std::snprintf(line, sizeof line, "      %-16s %-4s %-22s %10s\n", where.c_str(), el.c_str(), env.c_str(),
                  fmt_shift(g.shift_ppm, shift_digits(g.nucleus)).c_str());
    s += line;
  }
  if (!p.warning.empty()) s += "# note: " + p.warning + "\n";
  return s;
}

std::string csv_header() { return "molecule,atom_index,element,nucleus,shift_ppm,equivalent_atoms\n"; }

std::string format_csv_rows(const ShiftPrediction& p) {
  std::string s;
  const std::string name = csv_field(prediction_name(p));
  for (const AtomShift& a : p.atoms) {
    s += name + "," + std::to_string(a.atom) + "," + chem::element_symbol(p.molecule.atoms[a.atom].element) + "," +
         chem::nucleus_name(a.nucleus) + "," + fmt_shift(a.shift_ppm, 3) + "," + join_ints(a.equivalent, ";") + "\n";
  }
  return s;
}

std::string format_json(const ShiftPrediction& p) {
  const Molecule& m = p.molecule;
  std::string s = "{\"molecule\":\"" + json_escape(prediction_name(p)) + "\",\"smiles\":\"" + json_escape(m.smiles) +
                  "\",\"solvent\":\"" + chem::solvent_name(p.solvent) + "\",\"atoms\":[";
  for (size_t k = 0; k < p.atoms.size(); ++k) {
    const AtomShift& a = p.atoms[k];
    s += std::string(k ? "," : "") + "{\"atom_index\":" + std::to_string(a.atom) + ",\"element\":\"" +
         chem::element_symbol(m.atoms[a.atom].element) + "\",\"nucleus\":\"" + chem::nucleus_name(a.nucleus) +
         "\",\"heavy_atom\":" + std::to_string(a.heavy) + ",\"shift_ppm\":" + fmt_shift(a.shift_ppm, 4) +
         ",\"equivalent_atoms\":[" + join_ints(a.equivalent, ",") + "]}";
  }
  s += "],\"groups\":[";
  for (size_t k = 0; k < p.groups.size(); ++k) {
    const ShiftGroup& g = p.groups[k];
    s += std::string(k ? "," : "") + "{\"nucleus\":\"" + chem::nucleus_name(g.nucleus) + "\",\"atoms\":[" +
         join_ints(g.atoms, ",") + "],\"heavy_atoms\":[" + join_ints(g.heavy_atoms, ",") + "],\"environment\":\"" +
         json_escape(g.environment) + "\",\"shift_ppm\":" + fmt_shift(g.shift_ppm, 4) + "}";
  }
  s += "]";
  if (!p.warning.empty()) s += ",\"warning\":\"" + json_escape(p.warning) + "\"";
  return s + "}";
}

std::string format_sdf(const ShiftPrediction& p) {
  const Molecule& m = p.molecule;
  std::string block = chem::molecule_to_molblock(m);
  // molecule_to_molblock writes 0D coordinates: put the 3-D ones into the atom block (columns 1-30 of the
  // N lines after the counts line) and mark the header "3D".
  std::vector<std::string> lines;
  {
    std::stringstream ss(block);
    std::string l;
    while (std::getline(ss, l)) lines.push_back(l);
  }
  if (lines.size() < 4 + m.atoms.size()) predict_fail("format_sdf: short molblock for " + m.id);
  lines[0] = prediction_name(p);
  lines[1] = "  larmor  00000000003D";
  if (m.has_3d())
    for (size_t i = 0; i < m.atoms.size(); ++i) {
      char xyz[40];
      std::snprintf(xyz, sizeof xyz, "%10.4f%10.4f%10.4f", m.coords[i][0], m.coords[i][1], m.coords[i][2]);
      std::string& l = lines[4 + i];
      if (l.size() >= 30) l.replace(0, 30, xyz);
    }
  std::string s;
  for (const std::string& l : lines) s += l + "\n";
  static const char* kMult = "SDTQ";
  std::map<int, std::string> spectra;  // nucleus -> value
  for (const AtomShift& a : p.atoms) {
    std::string& v = spectra[static_cast<int>(a.nucleus)];
    v += fmt_shift(a.shift_ppm, 2) + ";0.0";
    if (a.nucleus == Nucleus::C13) v += kMult[std::min<int>(3, m.atoms[a.atom].num_h)];
    v += ";" + std::to_string(a.nucleus == Nucleus::H1 ? a.heavy : a.atom) + "|";
  }
  for (const auto& [n, v] : spectra)
    s += std::string("> <Spectrum ") + chem::nucleus_name(static_cast<Nucleus>(n)) + " 0>\n" + v + "\n\n";
  if (!m.smiles.empty()) s += "> <SMILES>\n" + m.smiles + "\n\n";
  s += std::string("> <Solvent>\n") + chem::solvent_name(p.solvent) + "\n\n";
  return s + "$$$$\n";
}

std::string format_svg(const ShiftPrediction& p, Nucleus nucleus) {
  const Molecule& m = p.molecule;
  std::vector<chem::SpectrumStick> sticks;
  for (const ShiftGroup& g : p.groups) {
    if (g.nucleus != nucleus) continue;
    const bool h = nucleus == Nucleus::H1;
    std::string label;
    for (size_t k = 0; k < g.heavy_atoms.size(); ++k) {
      const int32_t i = g.heavy_atoms[k];
      if (k) label += ',';
      label += chem::element_symbol(m.atoms.at(static_cast<size_t>(i)).element);
      label += std::to_string(i);
    }
    if (h) {
      label += " (";
      label += std::to_string(g.atoms.size());
      label += "H)";
    }
    sticks.push_back({g.shift_ppm, static_cast<double>(g.atoms.size()), label});
  }
  const int element = chem::nucleus_element(nucleus);
  if (sticks.empty()) {
    for (const chem::Atom& a : m.atoms)
      if (a.element == element)
        predict_fail(std::string("format_svg: ") + prediction_name(p) + " has no predicted " +
                     chem::nucleus_name(nucleus) + " shifts (nucleus not requested)");
  }
  std::string title = prediction_name(p) + ": predicted " + chem::nucleus_name(nucleus) + " shifts";
  if (p.solvent != chem::Solvent::Unknown) title += std::string(" (") + chem::solvent_name(p.solvent) + ")";
  return chem::stick_spectrum_svg(sticks, chem::nucleus_name(nucleus), title);
}

}  // namespace larmor
