#include "chem/ob_prepare.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include "chem/nmrshiftdb.h"
#include "chem/ob_conformer.h"
#include "chem/ob_molecule.h"
#include "chem/peak_text.h"
#include "chem/text_input.h"
#include "engine/error.h"

namespace larmor::chem {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// A reason without its per-item details, for counting: drops a leading "nmrshiftdb2:<n>: ", keeps the
// last clause after a quoted value ("peak 24 '4.6;0.0x': non-numeric intensity" -> "non-numeric
// intensity"), and cuts at the first parenthesis or quote ("empty 13C spectrum (ID 2002)" -> "empty 13C
// spectrum").
std::string reason_category(const std::string& reason, const std::string& id = "") {
  std::string r = reason;
  if (!id.empty() && r.compare(0, id.size() + 2, id + ": ") == 0) r = r.substr(id.size() + 2);
  if (r.compare(0, 12, "nmrshiftdb2:") == 0)
    if (auto c = r.find(": "); c != std::string::npos) r = r.substr(c + 2);
  if (auto q = r.rfind("': "); q != std::string::npos) r = r.substr(q + 3);
  for (size_t i = 0; i + 2 < r.size(); ++i)  // "too large: 259 atoms" -> "too large"
    if (r[i] == ':' && r[i + 1] == ' ' && std::isdigit(static_cast<unsigned char>(r[i + 2]))) {
      r.resize(i);
      break;
    }
  size_t cut = r.find_first_of("'\"(");
  if (cut != std::string::npos && cut > 0) r = r.substr(0, cut);
  while (!r.empty() && (r.back() == ' ' || r.back() == ':' || r.back() == ',')) r.pop_back();
  return r.empty() ? reason : r;
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

float median(std::vector<float> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2]);
}

// A molecule being assembled from several sources.
struct Pending {
  DatasetEntry entry;
  // Assigned observations before aggregation: (nucleus, atom) -> one list of shifts per spectrum.
  std::map<std::pair<int, int32_t>, std::vector<std::vector<float>>> observed;
  std::set<int> solvents;  // solvent classes of its spectra (Unknown excluded)
};

class Builder {
 public:
  Builder(const PrepareOptions& o, PrepareReport& r) : opt_(o), rep_(r) {
    for (Nucleus n : o.nuclei) wanted_.insert(static_cast<int>(n));
  }

  bool wants(Nucleus n) const { return wanted_.count(static_cast<int>(n)) > 0; }

  // `category` is what the report counts (no per-item details); `detail` goes to the problem list.
  void exclude(const std::string& source, const std::string& where, const std::string& category,
               const std::string& detail = "") {
    ++rep_.exclusions[source + ": " + category];
    rep_.problems.push_back(source + " " + where + ": " + category + (detail.empty() ? "" : " (" + detail + ")"));
  }
  void count(const std::string& key, int64_t n = 1) { rep_.counts[key] += n; }

  // SD sources (NMR8K, 19F): assigned spectra.
  void read_sd(const std::string& path, Source source, const std::string& label) {
    TextReader text = TextReader::open(path);
    SdRecordReader reader(text);
    SdRecord rec;
    int64_t kept = 0;
    while (reader.next(rec)) {
      if (opt_.limit > 0 && kept >= opt_.limit) break;
      count(label + ": records read");
      std::string where = "record " + std::to_string(rec.index) + " (line " + std::to_string(rec.first_line) + ")";
      if (!rec.error.empty()) {
        exclude(label, where, "malformed SD record", rec.error);
        continue;
      }
      std::vector<Spectrum> spectra;
      std::optional<int64_t> nid;
      try {
        nid = nmrshiftdb_id(rec.tags);
        spectra = spectra_from_sd_tags(rec.tags);
      } catch (const Error& e) {
        exclude(label, where, "malformed spectrum tag", e.what());
        continue;
      }
      if (nid) where += " [nmrshiftdb2 " + std::to_string(*nid) + "]";
      std::vector<Spectrum> keep;
      for (Spectrum& s : spectra) {
        if (!wants(s.nucleus)) continue;
        if (s.predicted) {
          exclude(label, where, std::string("predicted ") + nucleus_name(s.nucleus) + " spectrum excluded");
          continue;
        }
        if (s.peaks.empty()) {
          exclude(label, where, std::string("empty ") + nucleus_name(s.nucleus) + " spectrum");
          continue;
        }
        keep.push_back(std::move(s));
      }
      if (keep.empty()) {
        count(label + ": records without a wanted experimental spectrum");
        continue;
      }
      std::string id = nid ? "nmrshiftdb2:" + std::to_string(*nid) : label + ":" + std::to_string(rec.index);
      Molecule mol;
      try {
        mol = molecule_from_molblock(rec.molblock, id);
      } catch (const Error& e) {
        exclude(label, where, "molecule rejected: " + reason_category(e.what()), e.what());
        continue;
      }
      std::vector<int32_t> to_atom = mol.input_to_atom();
      Pending& p = pending_for(id, mol, nid, source);
      bool any = false;
      for (const Spectrum& s : keep) {
        std::map<int32_t, std::vector<float>> per_atom;
        std::string bad, bad_category;
        for (const Peak& pk : s.peaks) {
          if (pk.atom < 0 || pk.atom >= static_cast<int32_t>(to_atom.size())) {
            bad = "peak at atom " + std::to_string(pk.atom) + " which the record does not have";
            bad_category = "peak points at a missing atom";
            break;
          }
          int32_t a = to_atom[pk.atom];
          if (a < 0) {
            bad = "peak at atom " + std::to_string(pk.atom) + " of a removed fragment";
            bad_category = "peak on a removed salt/solvent fragment";
            break;
          }
          const Atom& at = p.entry.mol.atoms[a];
          bool right = s.nucleus == Nucleus::H1 ? (at.element != 1 && at.num_h > 0) : at.element == nucleus_element(s.nucleus);
          if (!right) {
            bad = std::string("peak at atom ") + std::to_string(pk.atom) + " (" + element_symbol(at.element) +
                  (s.nucleus == Nucleus::H1 ? ", no H" : "") + ") is not a " + nucleus_name(s.nucleus) + " site";
            bad_category = "peak points at an atom of the wrong element";
            break;
          }
          if (!std::isfinite(pk.shift)) {
            bad = "non-numeric shift";
            bad_category = bad;
            break;
          }
          per_atom[a].push_back(static_cast<float>(pk.shift));
        }
        if (!bad.empty()) {
          exclude(label, where, std::string(nucleus_name(s.nucleus)) + " spectrum dropped: " + bad_category, "spectrum " + std::to_string(s.number) + ": " + bad);
          continue;
        }
        for (auto& [a, shifts] : per_atom) {
          if (s.nucleus != Nucleus::H1) shifts = {median(shifts)};  // one value per carbon per spectrum
          std::sort(shifts.begin(), shifts.end());
          p.observed[{static_cast<int>(s.nucleus), a}].push_back(shifts);
        }
        if (s.solvent != Solvent::Unknown) p.solvents.insert(static_cast<int>(s.solvent));
        count(label + ": " + nucleus_name(s.nucleus) + " spectra kept");
        any = true;
      }
      if (any) ++kept;
    }
    count(label + ": molecules with assigned shifts", kept);
  }

  // pb table: unassigned peak sets.
  void read_pb(const std::string& path) {
    TextReader text = TextReader::open(path);
    std::map<int64_t, std::vector<PbSpectrumRow>> by_id;
    PbReadStats st = read_pb_spectra(
        text,
        [&](PbSpectrumRow&& row) {
          if (!wants(row.spectrum.nucleus)) return;
          if (row.spectrum.predicted) {
            exclude("pb", "line " + std::to_string(row.line), std::string("predicted ") + nucleus_name(row.spectrum.nucleus) + " spectrum excluded");
            return;
          }
          by_id[row.id].push_back(std::move(row));
        },
        [&](int64_t line, const std::string& reason) { exclude("pb", "line " + std::to_string(line), reason_category(reason), reason); });
    count("pb: rows read", st.rows);
    int64_t kept = 0;
    for (auto& [nid, rows] : by_id) {
      if (opt_.limit > 0 && kept >= opt_.limit) break;
      std::string id = "nmrshiftdb2:" + std::to_string(nid);
      auto it = pending_.find(id);
      Pending* p = nullptr;
      if (it != pending_.end()) {
        p = &it->second;
        p->entry.sources |= source_bit(Source::PB);
      } else {
        Molecule mol;
        try {
          mol = molecule_from_smiles(rows.front().smiles, id);
        } catch (const Error& e) {
          exclude("pb", "line " + std::to_string(rows.front().line), "molecule rejected: " + reason_category(e.what()), e.what());
          continue;
        }
        p = &pending_for(id, mol, nid, Source::PB);
      }
      int carbons = 0, hydrogens = 0;
      for (const Atom& a : p->entry.mol.atoms) {
        carbons += a.element == 6;
        hydrogens += a.element == 1;
      }
      bool any = false;
      for (PbSpectrumRow& row : rows) {
        const Spectrum& s = row.spectrum;
        int sites = s.nucleus == Nucleus::C13 ? carbons : s.nucleus == Nucleus::H1 ? hydrogens : 1 << 20;
        if (static_cast<int>(s.peaks.size()) > sites) {
          exclude("pb", "line " + std::to_string(row.line),
                  std::string(nucleus_name(s.nucleus)) + " spectrum has more peaks than the molecule has sites",
                  std::to_string(s.peaks.size()) + " peaks, " + std::to_string(sites) + " sites");
          continue;
        }
        PeakSet set;
        set.nucleus = s.nucleus;
        set.solvent = s.solvent;
        for (const Peak& pk : s.peaks) {
          set.shifts.push_back(static_cast<float>(pk.shift));
          set.mult.push_back(s.nucleus == Nucleus::C13 ? pk.mult : kMultUnknown);
        }
        std::vector<size_t> order(set.shifts.size());
        for (size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return set.shifts[a] < set.shifts[b]; });
        PeakSet sorted = set;
        for (size_t i = 0; i < order.size(); ++i) {
          sorted.shifts[i] = set.shifts[order[i]];
          sorted.mult[i] = set.mult[order[i]];
        }
        p->entry.peak_sets.push_back(std::move(sorted));
        if (s.solvent != Solvent::Unknown) p->solvents.insert(static_cast<int>(s.solvent));
        count(std::string("pb: ") + nucleus_name(s.nucleus) + " peak sets kept");
        any = true;
      }
      if (any) ++kept;
    }
    count("pb: molecules with peak sets", kept);
  }

  // 31P single-P table: one assigned 31P shift on the only P atom.
  void read_p31(const std::string& path) {
    TextReader text = TextReader::open(path);
    int64_t kept = 0;
    read_pb_31p_single(
        text,
        [&](P31Row&& row) {
          if (opt_.limit > 0 && kept >= opt_.limit) return;
          if (row.spectrum.peaks.empty()) return;
          std::string id = "nmrshiftdb2:" + std::to_string(row.id);
          std::string where = "line " + std::to_string(row.line);
          Pending* p;
          auto it = pending_.find(id);
          if (it != pending_.end()) {
            p = &it->second;
            p->entry.sources |= source_bit(Source::P31);
          } else {
            Molecule mol;
            try {
              mol = molecule_from_smiles(row.smiles, id);
            } catch (const Error& e) {
              exclude("31P", where, "molecule rejected: " + reason_category(e.what()), e.what());
              return;
            }
            p = &pending_for(id, mol, row.id, Source::P31);
          }
          int32_t p_atom = -1, n_p = 0;
          for (int32_t a = 0; a < p->entry.mol.num_atoms(); ++a)
            if (p->entry.mol.atoms[a].element == 15) p_atom = a, ++n_p;
          if (n_p != 1) {
            exclude("31P", where, "molecule does not have exactly one P atom", std::to_string(n_p) + " P atoms");
            return;
          }
          p->observed[{static_cast<int>(Nucleus::P31), p_atom}].push_back({static_cast<float>(row.spectrum.peaks[0].shift)});
          if (row.spectrum.solvent != Solvent::Unknown) p->solvents.insert(static_cast<int>(row.spectrum.solvent));
          ++kept;
        },
        [&](int64_t line, const std::string& reason) { exclude("31P", "line " + std::to_string(line), reason_category(reason), reason); });
    count("31P: molecules with assigned shifts", kept);
  }

  // Literature records (nmrbank CSV): SMILES + free-text 1H/13C peak lists -> unassigned peak sets. 1H
  // peaks with integrals are expanded to one entry per H (shift = centre of a range), as NMRNet++ does.
  void read_literature(const std::string& path) {
    TextReader text = TextReader::open(path);
    std::vector<std::string> f;
    int64_t first_line = 0, kept = 0;
    if (!next_csv_record(text, f, &first_line)) return;
    auto col = [&](const char* name) {
      for (size_t i = 0; i < f.size(); ++i)
        if (f[i] == name) return static_cast<int>(i);
      throw Error("prepare: " + path + " has no column '" + name + "'");
    };
    const int c_id = col("PMC accession number (PMCID)"), c_smiles = col("SMILES"), c_h = col("1H NMR text"),
              c_c = col("13C NMR text"), c_hcond = col("1H NMR conditions"), c_ccond = col("13C NMR conditions");
    const std::string base = fs::path(path).stem().string();
    int64_t row = 0;
    while (next_csv_record(text, f, &first_line)) {
      ++row;
      if (opt_.limit > 0 && kept >= opt_.limit) break;
      count("literature: records read");
      const std::string where = base + " line " + std::to_string(first_line);
      if (static_cast<int>(f.size()) <= std::max({c_id, c_smiles, c_h, c_c, c_hcond, c_ccond})) {
        exclude("literature", where, "record has too few columns");
        continue;
      }
      const std::string id = "literature:" + base + ":" + std::to_string(row) + ":" + f[c_id];
      if (f[c_smiles].empty() || f[c_smiles] == "N/A") {
        count("literature: records without a structure (SMILES N/A)");
        continue;
      }
      Molecule mol;
      try {
        mol = molecule_from_smiles(f[c_smiles], id);
      } catch (const Error& e) {
        exclude("literature", where, "molecule rejected: " + reason_category(e.what(), id), e.what());
        continue;
      }
      Pending* p = nullptr;
      bool any = false;
      for (Nucleus n : {Nucleus::H1, Nucleus::C13}) {
        if (!wants(n)) continue;
        const std::string& txt = f[n == Nucleus::H1 ? c_h : c_c];
        if (txt.empty() || txt == "N/A") continue;
        PeakText pt = parse_peak_text(txt, n);
        if (pt.peaks.empty()) {
          exclude("literature", where, std::string("no ") + nucleus_name(n) + " peaks parsed");
          continue;
        }
        PeakSet set;
        set.nucleus = n;
        set.solvent = pt.solvent != Solvent::Unknown ? pt.solvent : parse_solvent(f[n == Nucleus::H1 ? c_hcond : c_ccond]);
        bool integrals = n == Nucleus::H1;
        for (const Peak& pk : pt.peaks) integrals = integrals && std::isfinite(pk.intensity) && pk.intensity >= 0.5;
        for (const Peak& pk : pt.peaks) {
          double centre = std::isfinite(pk.shift_hi) ? 0.5 * (pk.shift + pk.shift_hi) : pk.shift;
          int copies = integrals ? static_cast<int>(std::lround(pk.intensity)) : 1;
          for (int k = 0; k < copies; ++k) {
            set.shifts.push_back(static_cast<float>(centre));
            set.mult.push_back(kMultUnknown);
          }
        }
        std::sort(set.shifts.begin(), set.shifts.end());
        int sites = 0;
        for (const Atom& a : mol.atoms) sites += a.element == nucleus_element(n);
        if (static_cast<int>(set.shifts.size()) > sites) {
          // Rotamer doubling, mixtures or stray numbers in the text: not a set of this molecule's sites.
          exclude("literature", where, std::string(nucleus_name(n)) + " spectrum has more peaks than the molecule has sites",
                  std::to_string(set.shifts.size()) + " peaks, " + std::to_string(sites) + " sites");
          continue;
        }
        if (!p) p = &pending_for(id, mol, std::nullopt, Source::Literature);
        if (set.solvent != Solvent::Unknown) p->solvents.insert(static_cast<int>(set.solvent));
        p->entry.peak_sets.push_back(std::move(set));
        count(std::string("literature: ") + nucleus_name(n) + " peak sets kept");
        any = true;
      }
      if (any) ++kept;
    }
    count("literature: molecules with peak sets", kept);
  }

  // Aggregate repeats, attach conformers, split. Molecules whose conformer fails are dropped.
  Dataset finish(const PrepareProgress& progress) {
    // Molecules whose every spectrum was dropped carry no supervision: counted, not kept.
    std::vector<Pending*> order;
    for (auto& [id, p] : pending_) {
      if (p.observed.empty() && p.entry.peak_sets.empty()) {
        count("molecules without any kept spectrum (not kept)");
        continue;
      }
      order.push_back(&p);
    }
    std::vector<std::string> blocks;
    blocks.reserve(order.size());
    for (Pending* p : order) blocks.push_back(molecule_to_molblock(p->entry.mol));
    ConformerOptions co;
    co.seed = opt_.seed;
    co.max_steps = opt_.conformer_steps;
    auto t0 = Clock::now();
    if (progress.begin) progress.begin("conformers", static_cast<int64_t>(blocks.size()));
    std::vector<ConformerResult> confs = generate_conformers(blocks, co, opt_.workers, [&](size_t done, size_t) {
      if (progress.update) progress.update(static_cast<int64_t>(done));
    });
    if (progress.end) progress.end();
    rep_.seconds_conformers = seconds_since(t0);

    Dataset ds;
    for (size_t i = 0; i < order.size(); ++i) {
      Pending& p = *order[i];
      if (!confs[i].ok) {
        exclude("conformer", p.entry.mol.id, "3-D conformer failed", confs[i].error);
        continue;
      }
      if (confs[i].forcefield_used != "MMFF94") count("conformers: " + (confs[i].forcefield_used.empty() ? std::string("no force field") : confs[i].forcefield_used) + " fallback");
      p.entry.mol.coords = std::move(confs[i].coords);
      aggregate(p);
      p.entry.solvent = p.solvents.size() == 1 ? static_cast<Solvent>(*p.solvents.begin()) : Solvent::Unknown;
      p.entry.split = split_of(p.entry.mol, opt_.seed);
      p.entry.mol.tags.clear();  // the spectra are now in assigned/peak_sets; keep the header small
      ds.entries.push_back(std::move(p.entry));
    }
    rep_.molecules = static_cast<int64_t>(ds.entries.size());
    return ds;
  }

 private:
  Pending& pending_for(const std::string& id, const Molecule& mol, std::optional<int64_t> nid, Source source) {
    auto [it, inserted] = pending_.try_emplace(id);
    if (inserted) {
      it->second.entry.mol = mol;
      it->second.entry.nmrshiftdb_id = nid ? std::to_string(*nid) : "";
    }
    it->second.entry.sources |= source_bit(source);
    return it->second;
  }

  // Median over repeated spectra. 13C/19F/31P: one value per spectrum per atom. 1H: each spectrum gives
  // the sorted distinct shifts of the atom's hydrogens; spectra agreeing on how many there are (the most
  // common count) are combined element-wise.
  static void aggregate(Pending& p) {
    for (auto& [key, per_spectrum] : p.observed) {
      Nucleus nucleus = static_cast<Nucleus>(key.first);
      std::map<size_t, int> how_many;
      for (const auto& v : per_spectrum) ++how_many[v.size()];
      size_t k = std::max_element(how_many.begin(), how_many.end(), [](auto& a, auto& b) { return a.second < b.second; })->first;
      for (size_t j = 0; j < k; ++j) {
        std::vector<float> values;
        for (const auto& v : per_spectrum)
          if (v.size() == k) values.push_back(v[j]);
        p.entry.assigned.push_back({key.second, nucleus, median(values), static_cast<int32_t>(values.size())});
      }
    }
  }

  const PrepareOptions& opt_;
  PrepareReport& rep_;
  std::set<int> wanted_;
  std::map<std::string, Pending> pending_;
};

std::string source_path(const PrepareOptions& o, const std::string& source) {
  fs::path d(o.data_dir);
  if (source == "nmr8k") return (d / "cascade_nmrshiftdb8k" / "NMR8K.sdf.gz").string();
  if (source == "pb") return (d / "nmrshiftdb2_json_pb" / "nmrshiftdb2_pb_spectra.tsv.xz").string();
  if (source == "f19") return (d / "nmrshiftdb2_19F_kuhn" / "nmrshiftdb2withsignals_fl.sd").string();
  if (source == "p31") return (d / "nmrshiftdb2_json_pb" / "nmrshiftdb2_pb_31P_singleP.tsv").string();
  if (source == "literature") return (d / "nmrbank_literature_dev" / "train_1000.csv").string();
  throw Error("prepare: unknown source '" + source + "' (expected nmr8k, pb, f19, p31 or literature)");
}

}  // namespace

std::string prepare_inputs_signature(const PrepareOptions& o) {
  std::ostringstream s;
  s << "v1 seed=" << o.seed << " steps=" << o.conformer_steps << " limit=" << o.limit << " nuclei=";
  for (Nucleus n : o.nuclei) s << nucleus_name(n) << ",";
  for (const std::string& src : o.sources) {
    std::string path = source_path(o, src);
    std::error_code ec;
    auto size = fs::file_size(path, ec);
    auto mtime = fs::last_write_time(path, ec).time_since_epoch().count();
    s << " " << src << "=" << fs::absolute(path).lexically_normal().string() << ":" << (ec ? 0 : size) << ":" << mtime;
  }
  return s.str();
}

Dataset prepare_dataset(const PrepareOptions& o, PrepareReport& report, const PrepareProgress& progress) {
  auto t0 = Clock::now();
  init_openbabel();
  for (const std::string& src : o.sources) {
    std::string path = source_path(o, src);
    if (!fs::exists(path)) throw Error("prepare: source '" + src + "' not found at " + path + " (set --data to the data folder)");
  }
  if (o.nuclei.empty()) throw Error("prepare: no nuclei selected");
  Builder b(o, report);
  for (const std::string& src : o.sources) {
    if (progress.begin) progress.begin("reading " + src, 0);
    if (src == "nmr8k") b.read_sd(source_path(o, src), Source::NMR8K, "NMR8K");
    if (src == "f19") b.read_sd(source_path(o, src), Source::F19, "19F");
    if (src == "pb") b.read_pb(source_path(o, src));
    if (src == "p31") b.read_p31(source_path(o, src));
    if (src == "literature") {
      // Both files of the literature set (train_1000.csv, dev_1022.csv); the split is ours, by structure.
      fs::path dir = fs::path(source_path(o, src)).parent_path();
      for (const char* file : {"train_1000.csv", "dev_1022.csv"})
        if (fs::exists(dir / file)) b.read_literature((dir / file).string());
    }
    if (progress.end) progress.end();
  }
  report.seconds_parse = seconds_since(t0);
  Dataset ds = b.finish(progress);
  report.seconds_total = seconds_since(t0);
  ds.info["inputs"] = prepare_inputs_signature(o);
  ds.info["seed"] = std::to_string(o.seed);
  ds.info["conformer"] = "Open Babel OBBuilder + MMFF94 (UFF fallback), " + std::to_string(o.conformer_steps) + " steps";
  std::string srcs;
  for (const std::string& s : o.sources) srcs += (srcs.empty() ? "" : ",") + s;
  ds.info["sources"] = srcs;
  return ds;
}

}  // namespace larmor::chem
