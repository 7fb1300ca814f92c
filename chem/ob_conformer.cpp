// 3D conformers with Open Babel (see ob_conformer.h for the contract).
//
// Why worker processes and not threads. Open Babel 3.1 is not built for concurrent use: plugins load lazily
// into global tables, obErrorLog is one global object, the atom/aromatic typers, the builder's fragment tables
// and the force fields' parameter tables are filled on first use and shared (Open Babel issues #2269, #2273).
// Those could be warmed up before starting threads, with one MakeNewInstance() force field per thread, but
// one problem cannot: OBBuilder draws its random vectors from a function-static OBRandom that calls the
// process-wide rand(). Threads would interleave their draws, so a molecule's coordinates would depend on
// scheduling, and seeding per molecule would be impossible without patching Open Babel. Worker processes
// (fork after warming Open Babel up, so every worker inherits loaded plugins, parsed MMFF94/UFF parameters
// and builder fragments copy-on-write) give each molecule a private rand() that we seed from
// (seed, molblock); they also contain the failures Open Babel has on odd input: a worker that crashes or
// never returns costs one molecule, which is reported, and is replaced. The price is a fork per worker and a
// socket round trip per molecule (microseconds, against tens of milliseconds of force-field work).
//
// Why the result is the same in a worker as in the caller's process: the per-molecule work depends only on
// the molblock, the options and state that is identical after warm-up (parameters, fragment tables, the
// already-constructed random generator); the force field instance is reset after every molecule so nothing
// of the previous molecule (Open Babel skips its setup when two molecules look alike) carries over, and the
// force field's OpenMP loops run on one thread (their reductions are not reproducible otherwise).
//
// Per molecule: parse the molblock (every H explicit: implicit H counts are forced to 0) and check its atoms
// against the text; OBBuilder::Build; spread disconnected fragments apart; set up MMFF94 (UFF when MMFF94
// cannot type the molecule: B, Se, Sn, hypervalent P, ...); minimise; check the geometry (bond lengths against
// covalent radii, no overlapping atoms) and the stereo against the input, repairing wrong centres / double
// bonds and minimising again; a build that stays broken is redone with a derived seed, up to `attempts` times.
//
// Why our own minimiser. Open Babel's conjugate gradients spend ~5 energy+gradient evaluations per step in
// their line search and, from the builder's strained geometries (ring closures stretched to several Å, atoms
// on top of each other), were still ~10 kcal/mol above the minimum after 500 steps. L-BFGS on the same MMFF94
// energy and gradient (minimise_lbfgs) accepts its first trial step almost always and converges (RMS force
// 0.2 kcal/mol/Å, bonds within ~0.001 Å and energy within ~0.7 kcal/mol of the fully converged geometry) in
// ~190 steps at ~1 evaluation each: half the time of 100 conjugate-gradient steps, which leave molecules
// ~60 kcal/mol above their minimum (500 CG steps: still ~10-20 kcal/mol, at 5x the time).
#include "chem/ob_conformer.h"

#include <openbabel/atom.h>
#include <openbabel/bond.h>
#include <openbabel/builder.h>
#include <openbabel/elements.h>
#include <openbabel/forcefield.h>
#include <openbabel/math/vector3.h>
#include <openbabel/mol.h>
#include <openbabel/obconversion.h>
#include <openbabel/oberror.h>
#include <openbabel/obiter.h>
#include <openbabel/stereo/cistrans.h>
#include <openbabel/stereo/stereo.h>
#include <openbabel/stereo/tetrahedral.h>
#include <dlfcn.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "engine/error.h"

namespace larmor::chem {
namespace {

using Clock = std::chrono::steady_clock;

// ---- seeding ------------------------------------------------------------------------------------------------

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// The seed of one build: (options.seed, the molblock's connection table, attempt). Only the lines between the
// 3-line header and "M  END" count, without '\r': writers put a timestamp on header line 2 (Open Babel does),
// the title names the record rather than the molecule, and SD data items after M  END are not structure.
unsigned molecule_seed(uint64_t seed, const std::string& molblock, int attempt) {
  size_t begin = 0;
  for (int line = 0; line < 3 && begin != std::string::npos; ++line) {
    begin = molblock.find('\n', begin);
    if (begin != std::string::npos) ++begin;
  }
  if (begin == std::string::npos) begin = 0;
  size_t end = molblock.find("M  END", begin);
  end = end == std::string::npos ? molblock.size() : end;
  uint64_t body = 1469598103934665603ull;  // FNV-1a
  for (size_t i = begin; i < end; ++i) {
    if (molblock[i] == '\r') continue;
    body ^= static_cast<unsigned char>(molblock[i]);
    body *= 1099511628211ull;
  }
  const uint64_t h = splitmix64(splitmix64(seed) ^ body ^ splitmix64(static_cast<uint64_t>(attempt) + 17));
  return static_cast<unsigned>(h ^ (h >> 32));
}

// ---- Open Babel state (one per process) ----------------------------------------------------------------------

// A stream that swallows Open Babel's console output while we collect its messages from the log instead.
struct NullBuffer : std::streambuf {
  int overflow(int c) override { return c; }
};

struct ObState {
  std::map<std::string, std::unique_ptr<OpenBabel::OBForceField>> forcefields;  // our own instances
  NullBuffer null_buffer;
  std::ostream null_stream{&null_buffer};
  std::string init_error;
};

std::mutex& ob_mutex() {
  static std::mutex m;
  return m;
}

ObState& ob_state() {
  static ObState state;
  return state;
}

// Silences Open Babel's console output for the scope and hands back the messages logged meanwhile.
class ObLogCapture {
 public:
  ObLogCapture() : stream_(OpenBabel::obErrorLog.GetOutputStream()), level_(OpenBabel::obErrorLog.GetOutputLevel()) {
    OpenBabel::obErrorLog.ClearLog();
    OpenBabel::obErrorLog.SetOutputStream(&ob_state().null_stream);
    OpenBabel::obErrorLog.SetOutputLevel(OpenBabel::obWarning);
  }
  ~ObLogCapture() {
    OpenBabel::obErrorLog.ClearLog();
    OpenBabel::obErrorLog.SetOutputStream(stream_);
    OpenBabel::obErrorLog.SetOutputLevel(level_);
  }
  ObLogCapture(const ObLogCapture&) = delete;
  ObLogCapture& operator=(const ObLogCapture&) = delete;

  // The logged errors (or, without errors, warnings), one line each, trimmed: for error messages.
  static std::string messages() {
    auto msgs = OpenBabel::obErrorLog.GetMessagesOfLevel(OpenBabel::obError);
    if (msgs.empty()) msgs = OpenBabel::obErrorLog.GetMessagesOfLevel(OpenBabel::obWarning);
    std::string out;
    for (const auto& m : msgs) {
      std::string line;
      for (char c : m) line += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
      while (!line.empty() && line.back() == ' ') line.pop_back();
      if (line.empty()) continue;
      if (!out.empty()) out += "; ";
      out += line;
      if (out.size() > 400) break;
    }
    return out;
  }

 private:
  std::ostream* stream_;
  OpenBabel::obMessageLevel level_;
};

// Open Babel 3.1 (Debian build) runs the force-field energy terms in OpenMP parallel loops with reductions:
// with more than one OpenMP thread the summation order, hence the last bits of every energy and gradient,
// changes from run to run, and worker processes would oversubscribe the cores. We run those loops on one
// thread (parallelism comes from the worker processes) and restore the caller's setting afterwards. The
// OpenMP runtime is reached through dlsym because it is Open Babel's dependency, not ours; without it
// (an Open Babel built without OpenMP) there is nothing to do.
class SingleThreadedOpenMP {
 public:
  SingleThreadedOpenMP() {
    static const auto set = reinterpret_cast<void (*)(int)>(::dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
    static const auto get = reinterpret_cast<int (*)()>(::dlsym(RTLD_DEFAULT, "omp_get_max_threads"));
    if (set && get) {
      set_ = set;
      saved_ = get();
      set_(1);
    }
  }
  ~SingleThreadedOpenMP() {
    if (set_) set_(saved_);
  }
  SingleThreadedOpenMP(const SingleThreadedOpenMP&) = delete;
  SingleThreadedOpenMP& operator=(const SingleThreadedOpenMP&) = delete;

 private:
  void (*set_)(int) = nullptr;
  int saved_ = 1;
};

const char* kWarmupMolblock =  // ethanol, explicit H, built and minimised once per process at warm-up
    "warm-up\n  larmor          0D\n\n"
    "  9  8  0  0  0  0  0  0  0  0999 V2000\n"
    "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
    "    0.0000    0.0000    0.0000 C   0  0  0  0  0  0  0  0  0  0  0  0\n"
    "    0.0000    0.0000    0.0000 O   0  0  0  0  0  0  0  0  0  0  0  0\n"
    "    0.0000    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"
    "    0.0000    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"
    "    0.0000    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"
    "    0.0000    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"
    "    0.0000    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"
    "    0.0000    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"
    "  1  2  1  0\n  2  3  1  0\n  1  4  1  0\n  1  5  1  0\n  1  6  1  0\n  2  7  1  0\n  2  8  1  0\n  3  9  1  0\n"
    "M  END\n";

OpenBabel::OBForceField* forcefield_instance(const std::string& name);

// Loads everything Open Babel initialises lazily, so that (a) worker processes inherit it instead of each
// redoing it and (b) the function-static random generator of vector3::randomUnitVector() is constructed
// (its constructor reseeds rand() from the clock) before we seed rand() ourselves. Called with ob_mutex held.
void warm_up_locked() {
  static bool done = false;
  if (done) return;
  done = true;
  ObLogCapture capture;
  SingleThreadedOpenMP one_thread;
  OpenBabel::vector3 v;
  v.randomUnitVector();
  OpenBabel::OBConversion conv;
  if (!conv.SetInFormat("mol") || !conv.SetOutFormat("mol")) {
    ob_state().init_error = "Open Babel has no MDL molfile format plugin (BABEL_LIBDIR?)";
    return;
  }
  for (const char* name : {"MMFF94", "UFF"}) {
    if (!forcefield_instance(name)) {
      ob_state().init_error = std::string("Open Babel force field ") + name + " not found (BABEL_DATADIR?)";
      return;
    }
  }
  // One build + setup: loads the builder's fragment tables, the atom typers and both parameter sets.
  OpenBabel::OBMol mol;
  if (conv.ReadString(&mol, kWarmupMolblock)) {
    OpenBabel::OBBuilder builder;
    builder.Build(mol, false);
    for (const char* name : {"MMFF94", "UFF"}) {
      OpenBabel::OBForceField* ff = forcefield_instance(name);
      ff->Setup(mol);
      OpenBabel::OBMol empty;
      ff->Setup(empty);
    }
    OpenBabel::OBMol ring;  // ring fragments index (benzene)
    if (conv.SetInFormat("smi") && conv.ReadString(&ring, "c1ccccc1")) builder.Build(ring, false);
  }
}

// Our own instance per force field name (never the global plugin object other code may be using).
OpenBabel::OBForceField* forcefield_instance(const std::string& name) {
  auto& ffs = ob_state().forcefields;
  auto it = ffs.find(name);
  if (it != ffs.end()) return it->second.get();
  OpenBabel::OBForceField* proto = OpenBabel::OBForceField::FindForceField(name);
  if (!proto) return nullptr;
  std::unique_ptr<OpenBabel::OBForceField> inst(proto->MakeNewInstance());
  if (!inst) return nullptr;
  inst->SetLogLevel(OBFF_LOGLVL_NONE);
  inst->SetLogFile(&ob_state().null_stream);
  return ffs.emplace(name, std::move(inst)).first->second.get();
}

// ---- the molblock as text: what atoms the caller means -----------------------------------------------------

struct MolblockAtoms {
  std::vector<unsigned> elements;  // atomic numbers in file order
  std::string error;
};

// Reads the counts line and atom symbols of a V2000 molblock (header: 3 lines), independent of Open Babel.
MolblockAtoms read_molblock_atoms(const std::string& text) {
  MolblockAtoms out;
  std::istringstream in(text);
  std::string line;
  for (int i = 0; i < 3; ++i) {
    if (!std::getline(in, line)) {
      out.error = "molblock ends inside the 3-line header";
      return out;
    }
  }
  if (!std::getline(in, line) || line.size() < 6) {
    out.error = "molblock has no counts line";
    return out;
  }
  if (line.find("V3000") != std::string::npos) {
    out.error = "V3000 molblocks are not supported here (write V2000)";
    return out;
  }
  int natoms = 0;
  try {
    natoms = std::stoi(line.substr(0, 3));
  } catch (const std::exception&) {
    out.error = "molblock counts line '" + line.substr(0, 40) + "' has no atom count";
    return out;
  }
  if (natoms <= 0 || natoms > 999) {
    out.error = "molblock atom count " + std::to_string(natoms) + " out of range 1..999";
    return out;
  }
  for (int i = 0; i < natoms; ++i) {
    if (!std::getline(in, line) || line.size() < 34) {
      out.error = "molblock atom line " + std::to_string(i + 1) + " missing or truncated";
      return out;
    }
    std::string symbol = line.substr(31, 3);
    symbol.erase(std::remove(symbol.begin(), symbol.end(), ' '), symbol.end());
    unsigned z = (symbol == "D" || symbol == "T") ? 1u : OpenBabel::OBElements::GetAtomicNum(symbol.c_str());
    if (z == 0) {
      out.error = "molblock atom " + std::to_string(i + 1) + " has unknown element '" + symbol + "'";
      return out;
    }
    out.elements.push_back(z);
  }
  return out;
}

// ---- geometry ----------------------------------------------------------------------------------------------

// Disconnected parts (salts, solvates) all start near the origin in OBBuilder; line them up along x, 3 Å apart.
void spread_fragments(OpenBabel::OBMol& mol) {
  std::vector<std::vector<int>> frags;
  mol.ContigFragList(frags);
  if (frags.size() < 2) return;
  std::sort(frags.begin(), frags.end(), [](const auto& a, const auto& b) { return a.front() < b.front(); });
  double next_min_x = 0.0;
  for (size_t f = 0; f < frags.size(); ++f) {
    double lo = 1e300, hi = -1e300, cy = 0, cz = 0;
    for (int idx : frags[f]) {
      const OpenBabel::OBAtom* a = mol.GetAtom(idx);
      lo = std::min(lo, a->x());
      hi = std::max(hi, a->x());
      cy += a->y();
      cz += a->z();
    }
    cy /= frags[f].size();
    cz /= frags[f].size();
    const double shift = (f == 0) ? 0.0 : next_min_x - lo;
    for (int idx : frags[f]) {
      OpenBabel::OBAtom* a = mol.GetAtom(idx);
      a->SetVector(a->x() + shift, a->y() - cy, a->z() - cz);
    }
    next_min_x = hi + shift + 3.0;
  }
}

// Empty when the geometry is sane: finite, bonded distances within 0.6..1.5 x the covalent radius sum, and
// no pair of atoms that are neither 1-2 nor 1-3 closer than half their van der Waals radius sum (H..H 1.1 Å,
// C..C 1.7 Å; real intramolecular contacts, H-bonds included, stay above that). Catches a builder or
// minimiser that left atoms on top of each other or a bond stretched across the molecule.
std::string geometry_problem(OpenBabel::OBMol& mol) {
  const int n = static_cast<int>(mol.NumAtoms());
  std::vector<std::vector<int>> nbrs(n);
  for (OpenBabel::OBMolBondIter b(mol); b; ++b) {
    nbrs[b->GetBeginAtomIdx() - 1].push_back(static_cast<int>(b->GetEndAtomIdx()) - 1);
    nbrs[b->GetEndAtomIdx() - 1].push_back(static_cast<int>(b->GetBeginAtomIdx()) - 1);
  }
  for (int i = 0; i < n; ++i) {
    const OpenBabel::OBAtom* a = mol.GetAtom(i + 1);
    if (!std::isfinite(a->x()) || !std::isfinite(a->y()) || !std::isfinite(a->z()))
      return "non-finite coordinate on atom " + std::to_string(i);
  }
  char buf[160];
  for (OpenBabel::OBMolBondIter b(mol); b; ++b) {
    const double d = b->GetLength();
    const double ref = OpenBabel::OBElements::GetCovalentRad(b->GetBeginAtom()->GetAtomicNum()) +
                       OpenBabel::OBElements::GetCovalentRad(b->GetEndAtom()->GetAtomicNum());
    if (d < 0.6 * ref || d > 1.5 * ref) {
      std::snprintf(buf, sizeof buf, "bond %u-%u is %.2f A (covalent radii sum %.2f A)", b->GetBeginAtomIdx() - 1,
                    b->GetEndAtomIdx() - 1, d, ref);
      return buf;
    }
  }
  std::vector<char> near(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    std::fill(near.begin(), near.end(), 0);
    for (int j : nbrs[i]) {
      near[j] = 1;
      for (int k : nbrs[j]) near[k] = 1;
    }
    const OpenBabel::OBAtom* a = mol.GetAtom(i + 1);
    for (int j = i + 1; j < n; ++j) {
      if (near[j]) continue;
      const OpenBabel::OBAtom* b = mol.GetAtom(j + 1);
      const double dx = a->x() - b->x(), dy = a->y() - b->y(), dz = a->z() - b->z();
      const double d = std::sqrt(dx * dx + dy * dy + dz * dz);
      const double limit = 0.5 * (OpenBabel::OBElements::GetVdwRad(a->GetAtomicNum()) +
                                  OpenBabel::OBElements::GetVdwRad(b->GetAtomicNum()));
      if (d < limit) {
        std::snprintf(buf, sizeof buf, "atoms %d and %d overlap (%.2f A apart, limit %.2f A)", i, j, d, limit);
        return buf;
      }
    }
  }
  return {};
}

// Makes the force field forget its molecule, so the next Setup() is a full one even when the next molecule has
// the same atoms and bonds (Open Babel then skips typing and charges and keeps what it had).
void forget_molecule(OpenBabel::OBForceField& ff) {
  OpenBabel::OBMol empty;
  ff.Setup(empty);
}

// ---- stereo: check the 3D result against the input, repair what a reflection or a rotation can -----------
//
// OBBuilder gets stereo right by swapping substituents, which it cannot do at ring fusions and bridgeheads
// (the builder then leaves the centre as its ring template had it; ~1 in 5 stereo molecules of NMRShiftDB2
// come out with a centre inverted), and a strained build can also be minimised into the other configuration.
// So the minimised geometry is checked against the input's specified centres and double bonds, and a wrong
// one is repaired directly: a tetrahedral centre by mirroring the centre and its smallest acyclic substituent
// through the plane of its other neighbours (a 3-coordinate N/S/P centre: the centre alone through the plane
// of its neighbours), a double bond by turning the smaller side 180 degrees about it; then minimise again.

struct StereoIssue {
  bool tetrahedral = true;
  unsigned long a = 0, b = 0;  // centre (tetrahedral) or begin/end atom ids (double bond)
  std::string text;
};

// The substituent hanging off `barrier` at `start`: atoms reachable from `start` without passing through
// `barrier`. Empty when that path leads back to `barrier` (start and barrier share a ring).
std::vector<OpenBabel::OBAtom*> branch(OpenBabel::OBMol& mol, OpenBabel::OBAtom* start, OpenBabel::OBAtom* barrier) {
  std::vector<char> seen(mol.NumAtoms() + 1, 0);
  std::vector<OpenBabel::OBAtom*> out{start}, todo{start};
  seen[start->GetIdx()] = 1;
  while (!todo.empty()) {
    OpenBabel::OBAtom* a = todo.back();
    todo.pop_back();
    for (OpenBabel::OBAtomAtomIter nb(a); nb; ++nb) {
      if (&*nb == barrier) {
        if (a == start) continue;
        return {};
      }
      if (seen[nb->GetIdx()]) continue;
      seen[nb->GetIdx()] = 1;
      out.push_back(&*nb);
      todo.push_back(&*nb);
    }
  }
  return out;
}

std::vector<StereoIssue> stereo_issues(OpenBabel::OBMol& input, OpenBabel::OBMol& mol) {
  using OpenBabel::OBStereo;
  std::vector<StereoIssue> issues;
  OpenBabel::OBStereoFacade facade(&input);
  auto pos = [&](unsigned long id) { return mol.GetAtomById(id)->GetVector(); };
  for (OpenBabel::OBTetrahedralStereo* ts : facade.GetAllTetrahedralStereo()) {
    const auto cfg = ts->GetConfig(OBStereo::Clockwise, OBStereo::ViewFrom);
    if (!cfg.specified || cfg.refs.size() != 3) continue;
    bool implicit_ref = false;
    for (unsigned long r : cfg.refs) implicit_ref |= r == OBStereo::ImplicitRef;
    if (implicit_ref) continue;
    const OpenBabel::vector3 c = pos(cfg.center), a = pos(cfg.refs[0]), b = pos(cfg.refs[1]), d = pos(cfg.refs[2]);
    // The viewer: the `from` atom, or for a lone pair the direction opposite the three neighbours.
    OpenBabel::vector3 f;
    if (cfg.from == OBStereo::ImplicitRef) {
      OpenBabel::vector3 u = (a - c).normalize() + (b - c).normalize() + (d - c).normalize();
      f = c - u;
    } else {
      f = pos(cfg.from);
    }
    // a -> b -> d runs clockwise seen from f when f lies on the side opposite the triangle's right-hand normal.
    const double side = OpenBabel::dot(OpenBabel::cross(b - a, d - a), f - a);
    if (!(side < 0.0))
      issues.push_back({true, cfg.center, 0, "tetrahedral centre at atom " + std::to_string(cfg.center) +
                                                 (side > 0 ? " inverted" : " flat")});
  }
  for (OpenBabel::OBCisTransStereo* ct : facade.GetAllCisTransStereo()) {
    const auto cfg = ct->GetConfig();
    if (!cfg.specified) continue;
    OpenBabel::OBAtom* begin = mol.GetAtomById(cfg.begin);
    OpenBabel::OBAtom* end = mol.GetAtomById(cfg.end);
    if (!begin || !end) continue;
    for (unsigned long r : cfg.refs) {
      if (r == OBStereo::ImplicitRef) continue;
      OpenBabel::OBAtom* ra = mol.GetAtomById(r);
      if (!ra || !mol.GetBond(ra, begin)) continue;
      const unsigned long trans = ct->GetTransRef(r);
      const bool use_trans = trans != OBStereo::ImplicitRef && trans != OBStereo::NoRef;
      const unsigned long other = use_trans ? trans : ct->GetCisRef(r);
      if (other == OBStereo::ImplicitRef || other == OBStereo::NoRef) break;
      const double tor = std::fabs(mol.GetTorsion(ra, begin, end, mol.GetAtomById(other)));
      if (use_trans ? tor < 90.0 : tor > 90.0)
        issues.push_back({false, cfg.begin, cfg.end,
                          "double bond " + std::to_string(cfg.begin) + "=" + std::to_string(cfg.end) + " is " +
                              (use_trans ? "cis" : "trans") + " instead of " + (use_trans ? "trans" : "cis")});
      break;
    }
  }
  return issues;
}

OpenBabel::vector3 mirror(const OpenBabel::vector3& p, const OpenBabel::vector3& on_plane,
                          const OpenBabel::vector3& unit_normal) {
  return p - 2.0 * OpenBabel::dot(p - on_plane, unit_normal) * unit_normal;
}

// Applies the repairs described above; returns how many issues it could act on.
int repair_stereo(OpenBabel::OBMol& mol, const std::vector<StereoIssue>& issues) {
  int repaired = 0;
  for (const StereoIssue& issue : issues) {
    if (issue.tetrahedral) {
      OpenBabel::OBAtom* c = mol.GetAtomById(issue.a);
      std::vector<OpenBabel::OBAtom*> nbrs;
      for (OpenBabel::OBAtomAtomIter nb(c); nb; ++nb) nbrs.push_back(&*nb);
      if (nbrs.size() == 3) {  // lone pair centre: mirror the centre through its neighbours' plane
        const OpenBabel::vector3 p0 = nbrs[0]->GetVector();
        OpenBabel::vector3 n = OpenBabel::cross(nbrs[1]->GetVector() - p0, nbrs[2]->GetVector() - p0);
        if (n.length() < 1e-6) continue;
        n.normalize();
        c->SetVector(mirror(c->GetVector(), p0, n));
        ++repaired;
        continue;
      }
      if (nbrs.size() != 4) continue;
      std::vector<OpenBabel::OBAtom*> best;
      OpenBabel::OBAtom* moved = nullptr;
      for (OpenBabel::OBAtom* k : nbrs) {
        std::vector<OpenBabel::OBAtom*> br = branch(mol, k, c);
        if (!br.empty() && (best.empty() || br.size() < best.size())) {
          best = std::move(br);
          moved = k;
        }
      }
      if (!moved) continue;  // every substituent is in a ring through the centre
      std::vector<OpenBabel::vector3> plane;
      for (OpenBabel::OBAtom* o : nbrs)
        if (o != moved) plane.push_back(o->GetVector());
      OpenBabel::vector3 n = OpenBabel::cross(plane[1] - plane[0], plane[2] - plane[0]);
      if (n.length() < 1e-6) continue;
      n.normalize();
      c->SetVector(mirror(c->GetVector(), plane[0], n));
      for (OpenBabel::OBAtom* a : best) a->SetVector(mirror(a->GetVector(), plane[0], n));
      ++repaired;
    } else {
      OpenBabel::OBAtom* begin = mol.GetAtomById(issue.a);
      OpenBabel::OBAtom* end = mol.GetAtomById(issue.b);
      std::vector<OpenBabel::OBAtom*> side_end = branch(mol, end, begin);
      std::vector<OpenBabel::OBAtom*> side_begin = branch(mol, begin, end);
      if (side_end.empty() || side_begin.empty()) continue;  // the double bond is in a ring
      const bool turn_end = side_end.size() <= side_begin.size();
      const std::vector<OpenBabel::OBAtom*>& side = turn_end ? side_end : side_begin;
      const OpenBabel::vector3 origin = (turn_end ? end : begin)->GetVector();
      OpenBabel::vector3 axis = end->GetVector() - begin->GetVector();
      if (axis.length() < 1e-6) continue;
      axis.normalize();
      for (OpenBabel::OBAtom* a : side) {  // 180 degrees about the axis: p -> 2 proj - p (relative to origin)
        const OpenBabel::vector3 rel = a->GetVector() - origin;
        a->SetVector(origin + 2.0 * OpenBabel::dot(rel, axis) * axis - rel);
      }
      ++repaired;
    }
  }
  return repaired;
}

// A ring system built as the wrong enantiomer (bridgeheads, fused rings: nothing a single reflection can fix)
// is right in the mirror image, which has the same energy. Mirrors the molecule when that leaves fewer
// stereo issues (cis/trans is mirror-invariant; other centres are then repaired one by one).
void try_mirror_image(OpenBabel::OBMol& input, OpenBabel::OBMol& mol, std::vector<StereoIssue>& issues) {
  auto flip = [&] {
    for (OpenBabel::OBMolAtomIter a(mol); a; ++a) a->SetVector(-a->x(), a->y(), a->z());
  };
  flip();
  std::vector<StereoIssue> mirrored = stereo_issues(input, mol);
  if (mirrored.size() < issues.size())
    issues = std::move(mirrored);
  else
    flip();
}

// ---- minimisation ------------------------------------------------------------------------------------------

struct MinimiseStats {
  int iterations = 0;
  int evaluations = 0;
  double energy = 0.0;
  double rms_force = 0.0;
  bool hit_time_limit = false;
};

// L-BFGS (memory 8) with a backtracking Armijo line search on the force field's energy and analytic gradient.
// Open Babel's own conjugate gradients spend ~5 energy+gradient evaluations per step in their line search;
// L-BFGS usually accepts the first trial step, so a step costs ~1 evaluation and convergence takes fewer
// steps. Builder geometries can start with atoms nearly on top of each other (huge forces), so every step
// is capped to move no atom by more than 0.3 Å. Plain double arithmetic in a fixed order: deterministic.
MinimiseStats minimise_lbfgs(OpenBabel::OBForceField& ff, OpenBabel::OBMol& mol, int max_iterations,
                             double rms_force_tolerance, Clock::time_point deadline) {
  constexpr size_t kMemory = 8;
  constexpr double kMaxMove = 0.3;  // Å per atom per step
  constexpr double kArmijo = 1e-4;
  const size_t n = mol.NumAtoms(), n3 = 3 * n;
  using Vec = std::vector<double>;
  MinimiseStats stats;

  auto dot = [n3](const Vec& a, const Vec& b) {
    double s = 0.0;
    for (size_t k = 0; k < n3; ++k) s += a[k] * b[k];
    return s;
  };
  auto axpy = [n3](double alpha, const Vec& x, Vec& y) {  // y += alpha x
    for (size_t k = 0; k < n3; ++k) y[k] += alpha * x[k];
  };
  auto set_coordinates = [&](const Vec& x) {
    for (size_t i = 0; i < n; ++i)
      mol.GetAtom(static_cast<int>(i) + 1)->SetVector(x[3 * i], x[3 * i + 1], x[3 * i + 2]);
  };
  // Energy at x; g = dE/dx.
  auto evaluate = [&](const Vec& x, Vec& g) {
    set_coordinates(x);
    ff.SetCoordinates(mol);
    const double e = ff.Energy(true);
    const double* force = ff.GetGradientPtr();  // Open Babel stores -dE/dx
    // An angle at exactly 180 degrees (nitriles, allenes straight from the builder) has an undefined
    // derivative in Open Babel (NaN); treat it as no force, the neighbours' forces bend it off the singularity.
    for (size_t k = 0; k < n3; ++k) g[k] = std::isfinite(force[k]) ? -force[k] : 0.0;
    ++stats.evaluations;
    return e;
  };

  Vec x(n3), g(n3), d(n3), x_new(n3), g_new(n3), alpha(kMemory);
  for (size_t i = 0; i < n; ++i) {
    const OpenBabel::OBAtom* a = mol.GetAtom(static_cast<int>(i) + 1);
    x[3 * i] = a->x();
    x[3 * i + 1] = a->y();
    x[3 * i + 2] = a->z();
  }
  std::vector<Vec> s_hist, y_hist;  // last kMemory steps and gradient changes, oldest first
  Vec rho;                           // 1 / (s . y)
  auto forget_history = [&] {
    s_hist.clear();
    y_hist.clear();
    rho.clear();
  };
  double f = evaluate(x, g);

  for (; stats.iterations < max_iterations; ++stats.iterations) {
    stats.rms_force = std::sqrt(dot(g, g) / static_cast<double>(n));
    if (!std::isfinite(f) || stats.rms_force < rms_force_tolerance) break;
    if (Clock::now() > deadline) {
      stats.hit_time_limit = true;
      break;
    }
    // Two-loop recursion: d = -H g, H the L-BFGS inverse Hessian scaled by s.y / y.y of the last step.
    for (size_t k = 0; k < n3; ++k) d[k] = -g[k];
    const size_t m = s_hist.size();
    for (size_t j = m; j-- > 0;) {
      alpha[j] = rho[j] * dot(s_hist[j], d);
      axpy(-alpha[j], y_hist[j], d);
    }
    if (m > 0) {
      const double gamma = 1.0 / (rho[m - 1] * dot(y_hist[m - 1], y_hist[m - 1]));
      for (double& v : d) v *= gamma;
    }
    for (size_t j = 0; j < m; ++j) axpy(alpha[j] - rho[j] * dot(y_hist[j], d), s_hist[j], d);
    double slope = dot(g, d);
    if (!(slope < 0.0)) {  // not a descent direction: forget the curvature history, go downhill
      forget_history();
      for (size_t k = 0; k < n3; ++k) d[k] = -g[k];
      slope = dot(g, d);
    }
    double max_move = 0.0;
    for (size_t i = 0; i < n; ++i)
      max_move = std::max(max_move, std::sqrt(d[3 * i] * d[3 * i] + d[3 * i + 1] * d[3 * i + 1] +
                                              d[3 * i + 2] * d[3 * i + 2]));
    if (max_move > kMaxMove) {
      const double scale = kMaxMove / max_move;
      for (double& v : d) v *= scale;
      slope *= scale;
    }
    // Backtracking; if no trial meets the Armijo condition but one lowered the energy, take the lowest: Open
    // Babel's MMFF94 electrostatic gradient is not that of its buffered energy, so with atoms nearly on top
    // of each other the slope is far steeper than any energy change can be and Armijo never holds.
    double step = 1.0, f_new = f, best_f = f, best_step = 0.0;
    bool accepted = false;
    for (int trial = 0; trial < 30; ++trial) {
      for (size_t k = 0; k < n3; ++k) x_new[k] = x[k] + step * d[k];
      f_new = evaluate(x_new, g_new);
      if (std::isfinite(f_new) && f_new <= f + kArmijo * step * slope) {
        accepted = true;
        break;
      }
      if (std::isfinite(f_new) && f_new < best_f) {
        best_f = f_new;
        best_step = step;
      }
      step *= 0.5;
    }
    if (!accepted && best_step > 0.0) {
      for (size_t k = 0; k < n3; ++k) x_new[k] = x[k] + best_step * d[k];
      f_new = evaluate(x_new, g_new);
      accepted = true;
    }
    if (!accepted) {
      if (s_hist.empty()) break;  // steepest descent cannot go down either: at a (numerical) minimum
      forget_history();
      f = evaluate(x, g);  // the force field's coordinates back at x
      continue;
    }
    Vec s_vec(n3), y_vec(n3);
    for (size_t k = 0; k < n3; ++k) {
      s_vec[k] = x_new[k] - x[k];
      y_vec[k] = g_new[k] - g[k];
    }
    const double sy = dot(s_vec, y_vec);
    if (sy > 1e-12) {  // keep only pairs with positive curvature (the update stays positive definite)
      if (s_hist.size() == kMemory) {
        s_hist.erase(s_hist.begin());
        y_hist.erase(y_hist.begin());
        rho.erase(rho.begin());
      }
      s_hist.push_back(std::move(s_vec));
      y_hist.push_back(std::move(y_vec));
      rho.push_back(1.0 / sy);
    }
    x.swap(x_new);
    g.swap(g_new);
    f = f_new;
  }
  set_coordinates(x);
  stats.energy = f;
  return stats;
}

constexpr int kStereoRepairRounds = 2;  // repair + re-minimise rounds per build

// ---- one molecule ------------------------------------------------------------------------------------------

// Called with ob_mutex held (or in a single-threaded worker process).
ConformerResult generate_conformer_locked(const std::string& molblock, const ConformerOptions& options) {
  ConformerResult result;
  try {
    warm_up_locked();
    if (!ob_state().init_error.empty()) {
      result.error = ob_state().init_error;
      return result;
    }
    if (options.max_steps < 0 || !(options.time_limit_s > 0) || options.attempts < 1 ||
        !(options.force_tolerance >= 0)) {
      result.error = "conformer options: need max_steps >= 0, time_limit_s > 0, force_tolerance >= 0, attempts >= 1";
      return result;
    }
    ObLogCapture capture;
    SingleThreadedOpenMP one_thread;
    const MolblockAtoms expected = read_molblock_atoms(molblock);
    if (!expected.error.empty()) {
      result.error = expected.error;
      return result;
    }

    OpenBabel::OBConversion conv;
    conv.SetInFormat("mol");
    OpenBabel::OBMol input;
    if (!conv.ReadString(&input, molblock)) {
      result.error = "Open Babel could not read the molblock";
      const std::string msgs = ObLogCapture::messages();
      if (!msgs.empty()) result.error += ": " + msgs;
      return result;
    }
    if (input.NumAtoms() != expected.elements.size()) {
      result.error = "Open Babel read " + std::to_string(input.NumAtoms()) + " atoms but the molblock lists " +
                     std::to_string(expected.elements.size());
      return result;
    }
    for (unsigned i = 0; i < input.NumAtoms(); ++i) {
      const unsigned z = input.GetAtom(i + 1)->GetAtomicNum();
      if (z != expected.elements[i]) {
        result.error = "atom " + std::to_string(i) + ": Open Babel read element " + std::to_string(z) +
                       ", the molblock says " + std::to_string(expected.elements[i]);
        return result;
      }
    }
    // Every hydrogen is an explicit atom: whatever the MDL valence model guessed for missing H is dropped, so
    // the force field sees exactly the atoms we return coordinates for.
    for (OpenBabel::OBMolAtomIter a(input); a; ++a) a->SetImplicitHCount(0);

    OpenBabel::OBForceField* ff = forcefield_instance(options.forcefield);
    if (!ff) {
      result.error = "unknown force field '" + options.forcefield + "'";
      return result;
    }

    // Attempts: the first build whose geometry is sane and whose stereo matches the input wins; a sane build
    // with a stereo mismatch is kept as the fallback (ok, stereo_ok=false) if no later attempt does better.
    const auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(options.time_limit_s));
    std::string last_problem;
    ConformerResult fallback;
    for (int attempt = 0; attempt < options.attempts; ++attempt) {
      if (attempt > 0 && Clock::now() > deadline) {
        last_problem += " (time limit reached before attempt " + std::to_string(attempt + 1) + ")";
        break;
      }
      OpenBabel::OBMol mol = input;
      std::srand(molecule_seed(options.seed, molblock, attempt));
      OpenBabel::OBBuilder builder;
      builder.Build(mol, false);  // its verdict on stereo is checked on the final geometry instead
      mol.SetDimension(3);
      spread_fragments(mol);

      OpenBabel::OBForceField* used = ff;
      std::string warning;
      if (!used->Setup(mol)) {
        const std::string why = ObLogCapture::messages();
        forget_molecule(*used);
        used = forcefield_instance("UFF");
        if (!used || !used->Setup(mol)) {
          result.error = "neither " + options.forcefield + " nor UFF could be set up for this molecule";
          const std::string msgs = ObLogCapture::messages();
          if (!msgs.empty()) result.error += ": " + msgs;
          if (used) forget_molecule(*used);
          return result;
        }
        warning = options.forcefield + " could not type this molecule, used UFF";
        if (!why.empty()) warning += " (" + why + ")";
      }
      const bool kj = used->GetUnit().find("kJ") != std::string::npos;  // UFF works in kJ/mol
      const double to_kcal = kj ? 1.0 / 4.184 : 1.0;
      MinimiseStats stats;
      int steps = 0;
      std::vector<StereoIssue> stereo;
      for (int round = 0;; ++round) {
        stats = minimise_lbfgs(*used, mol, options.max_steps, options.force_tolerance / to_kcal, deadline);
        steps += stats.iterations;
        last_problem = geometry_problem(mol);
        if (!last_problem.empty()) break;
        stereo = stereo_issues(input, mol);
        if (!stereo.empty()) try_mirror_image(input, mol, stereo);
        if (stereo.empty() || round == kStereoRepairRounds || stats.hit_time_limit) break;
        if (repair_stereo(mol, stereo) == 0) break;
      }
      forget_molecule(*used);
      if (!last_problem.empty()) {
        if (stats.hit_time_limit) last_problem += " (minimisation stopped by the time limit)";
        continue;
      }

      ConformerResult r;
      r.ok = true;
      r.coords.resize(mol.NumAtoms());
      for (unsigned i = 0; i < mol.NumAtoms(); ++i) {
        const OpenBabel::OBAtom* a = mol.GetAtom(i + 1);
        r.coords[i] = {static_cast<float>(a->x()), static_cast<float>(a->y()), static_cast<float>(a->z())};
      }
      r.forcefield_used = used == ff ? options.forcefield : "UFF";
      r.energy = stats.energy * to_kcal;
      r.rms_force = stats.rms_force * to_kcal;
      r.steps = steps;
      r.attempt = attempt;
      r.hit_time_limit = stats.hit_time_limit;
      r.warning = warning;
      if (stereo.empty()) return r;
      if (!fallback.ok) {
        r.stereo_ok = false;
        r.warning += std::string(r.warning.empty() ? "" : "; ") + "stereo not reproduced: " + stereo.front().text;
        if (stereo.size() > 1) r.warning += " (+" + std::to_string(stereo.size() - 1) + " more)";
        fallback = std::move(r);
      }
    }
    if (fallback.ok) return fallback;
    result.error = "geometry check failed on every build: " + last_problem;
    return result;
  } catch (const std::exception& e) {
    result = ConformerResult{};
    result.error = std::string("conformer generation failed: ") + e.what();
    return result;
  }
}

// ---- worker processes --------------------------------------------------------------------------------------

// Wire format (native endianness: both ends are the same binary on the same machine).
//   request: u64 index, u32 length, molblock bytes
//   reply:   u64 index, u8 ok, u8 stereo_ok, u8 hit_time_limit, i32 steps, i32 attempt, f64 energy,
//            f64 rms_force, u32 n, n*3 f32,
//            then three strings (u32 length + bytes): forcefield_used, warning, error

bool write_all(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t w = ::send(fd, p, size, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    size -= static_cast<size_t>(w);
  }
  return true;
}

bool read_all(int fd, void* data, size_t size) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t r = ::read(fd, p, size);
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (r == 0) return false;
    p += r;
    size -= static_cast<size_t>(r);
  }
  return true;
}

template <typename T>
void put(std::string& buf, const T& v) {
  buf.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

void put_string(std::string& buf, const std::string& s) {
  put(buf, static_cast<uint32_t>(s.size()));
  buf += s;
}

template <typename T>
bool get(int fd, T& v) {
  return read_all(fd, &v, sizeof(T));
}

bool get_string(int fd, std::string& s, uint32_t max_size) {
  uint32_t n = 0;
  if (!get(fd, n) || n > max_size) return false;
  s.resize(n);
  return n == 0 || read_all(fd, s.data(), n);
}

std::string encode_reply(uint64_t index, const ConformerResult& r) {
  std::string buf;
  put(buf, index);
  put(buf, static_cast<uint8_t>(r.ok));
  put(buf, static_cast<uint8_t>(r.stereo_ok));
  put(buf, static_cast<uint8_t>(r.hit_time_limit));
  put(buf, static_cast<int32_t>(r.steps));
  put(buf, static_cast<int32_t>(r.attempt));
  put(buf, r.energy);
  put(buf, r.rms_force);
  put(buf, static_cast<uint32_t>(r.coords.size()));
  buf.append(reinterpret_cast<const char*>(r.coords.data()), r.coords.size() * sizeof(r.coords[0]));
  put_string(buf, r.forcefield_used);
  put_string(buf, r.warning);
  put_string(buf, r.error);
  return buf;
}

bool decode_reply(int fd, uint64_t& index, ConformerResult& r) {
  uint8_t ok = 0, stereo_ok = 0, hit = 0;
  int32_t steps = 0, attempt = 0;
  uint32_t n = 0;
  if (!get(fd, index) || !get(fd, ok) || !get(fd, stereo_ok) || !get(fd, hit) || !get(fd, steps) ||
      !get(fd, attempt) || !get(fd, r.energy) || !get(fd, r.rms_force) || !get(fd, n) || n > (1u << 20))
    return false;
  r.ok = ok != 0;
  r.stereo_ok = stereo_ok != 0;
  r.hit_time_limit = hit != 0;
  r.steps = steps;
  r.attempt = attempt;
  r.coords.resize(n);
  if (n > 0 && !read_all(fd, r.coords.data(), n * sizeof(r.coords[0]))) return false;
  return get_string(fd, r.forcefield_used, 1u << 16) && get_string(fd, r.warning, 1u << 20) &&
         get_string(fd, r.error, 1u << 20);
}

// A molblock starting with this line makes a worker process abort: how the tests check that a crash costs
// one molecule and not the run (in-process calls just see an unreadable molblock).
constexpr const char* kCrashProbe = "larmor-conformer-test: abort this worker\n";

[[noreturn]] void worker_main(int fd, const ConformerOptions& options) {
  for (;;) {
    uint64_t index = 0;
    std::string molblock;
    if (!get(fd, index) || !get_string(fd, molblock, 1u << 30)) _exit(0);  // parent closed the socket: done
    if (molblock.rfind(kCrashProbe, 0) == 0) std::abort();
    const ConformerResult r = generate_conformer_locked(molblock, options);
    const std::string reply = encode_reply(index, r);
    if (!write_all(fd, reply.data(), reply.size())) _exit(1);
  }
}

struct Worker {
  pid_t pid = -1;
  int fd = -1;
  int64_t job = -1;  // molecule index in flight, -1 when idle
  Clock::time_point started;
};

// Forks one worker; `all` lists every worker (the child closes the parent's ends it inherited, so each
// worker sees EOF as soon as the parent closes its socket). Called with ob_mutex held.
bool spawn_worker(Worker& w, const std::vector<Worker>& all, const ConformerOptions& options) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return false;
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(sv[0]);
    ::close(sv[1]);
    return false;
  }
  if (pid == 0) {
#ifdef __linux__
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    ::close(sv[0]);
    for (const Worker& other : all)
      if (other.fd >= 0) ::close(other.fd);
    worker_main(sv[1], options);
  }
  ::close(sv[1]);
  w.pid = pid;
  w.fd = sv[0];
  w.job = -1;
  return true;
}

void stop_worker(Worker& w, bool kill_it) {
  if (w.fd >= 0) ::close(w.fd);
  w.fd = -1;
  if (w.pid > 0) {
    if (kill_it) ::kill(w.pid, SIGKILL);
    int status = 0;
    while (::waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  w.pid = -1;
  w.job = -1;
}

// Why a worker stopped answering (EOF or a malformed reply): reaps it, killing it if it is still alive.
std::string reap_worker(pid_t pid) {
  int status = 0;
  for (int i = 0; i < 200; ++i) {  // a crashed worker is reaped at once; give a dying one up to 2 s
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFSIGNALED(status))
        return std::string("worker process died on signal ") + std::to_string(WTERMSIG(status)) + " (" +
               strsignal(WTERMSIG(status)) + ")";
      if (WIFEXITED(status)) return "worker process exited with status " + std::to_string(WEXITSTATUS(status));
    }
    if (r < 0 && errno != EINTR) return "worker process lost";
    ::usleep(10000);
  }
  ::kill(pid, SIGKILL);
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return "worker process sent a malformed reply and was killed";
}

}  // namespace

ConformerResult generate_conformer(const std::string& molblock_with_explicit_h, const ConformerOptions& options) {
  std::lock_guard<std::mutex> lock(ob_mutex());
  return generate_conformer_locked(molblock_with_explicit_h, options);
}

std::vector<ConformerResult> generate_conformers(const std::vector<std::string>& molblocks,
                                                 const ConformerOptions& options, int workers,
                                                 const ConformerProgress& progress) {
  const size_t total = molblocks.size();
  std::vector<ConformerResult> results(total);
  if (total == 0) return results;
  if (workers <= 0) workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers = static_cast<int>(std::min<size_t>(static_cast<size_t>(workers), total));

  // Warm Open Babel up in this process so that every worker starts with plugins, parameters and fragment
  // tables loaded; the lock is held across fork() so no other thread is inside Open Babel at that moment.
  std::unique_lock<std::mutex> lock(ob_mutex());
  warm_up_locked();
  if (!ob_state().init_error.empty()) {
    for (auto& r : results) r.error = ob_state().init_error;
    return results;
  }

  std::vector<Worker> pool(static_cast<size_t>(workers));
  struct PoolGuard {  // on an exception (a throwing progress callback, bad_alloc) no worker outlives the call
    std::vector<Worker>& pool;
    ~PoolGuard() {
      for (auto& w : pool) stop_worker(w, true);
    }
  } guard{pool};
  for (auto& w : pool) {
    if (!spawn_worker(w, pool, options)) {
      // No processes to be had: do the work here, serially (same results, no isolation).
      for (auto& other : pool) stop_worker(other, true);
      for (size_t i = 0; i < total; ++i) {
        results[i] = generate_conformer_locked(molblocks[i], options);
        if (progress) progress(i + 1, total);
      }
      return results;
    }
  }

  const double hang_limit_s = 2.0 * options.time_limit_s + 30.0;
  size_t next = 0, done = 0;
  // Hands the next molecule to worker w (replacing w if it is gone); computes it here if no worker can take it.
  auto assign = [&](Worker& w) {
    w.job = -1;
    if (next >= total) return;
    const size_t i = next++;
    std::string req;
    put(req, static_cast<uint64_t>(i));
    put_string(req, molblocks[i]);
    for (int tries = 0; tries < 2; ++tries) {
      if (w.fd >= 0 && write_all(w.fd, req.data(), req.size())) {
        w.job = static_cast<int64_t>(i);
        w.started = Clock::now();
        return;
      }
      stop_worker(w, true);
      if (!spawn_worker(w, pool, options)) break;
    }
    results[i] = generate_conformer_locked(molblocks[i], options);
    ++done;
    if (progress) progress(done, total);
  };
  for (auto& w : pool) assign(w);

  std::vector<pollfd> fds;
  while (done < total) {
    fds.clear();
    for (auto& w : pool)
      if (w.job >= 0) fds.push_back(pollfd{w.fd, POLLIN, 0});
    if (fds.empty()) break;  // nothing in flight and nothing could be assigned
    const int rc = ::poll(fds.data(), fds.size(), 1000);
    if (rc < 0 && errno != EINTR) break;
    for (auto& w : pool) {
      if (w.job < 0) continue;
      const auto pfd = std::find_if(fds.begin(), fds.end(), [&](const pollfd& p) { return p.fd == w.fd; });
      const bool readable = pfd != fds.end() && (pfd->revents & (POLLIN | POLLHUP | POLLERR));
      const size_t i = static_cast<size_t>(w.job);
      if (readable) {
        uint64_t index = 0;
        ConformerResult r;
        if (decode_reply(w.fd, index, r) && index == i) {
          results[i] = std::move(r);
        } else {
          ::close(w.fd);
          w.fd = -1;
          results[i] = ConformerResult{};
          results[i].error = reap_worker(w.pid) + " while building this molecule";
          w.pid = -1;
          w.job = -1;
          spawn_worker(w, pool, options);
        }
      } else if (std::chrono::duration<double>(Clock::now() - w.started).count() > hang_limit_s) {
        stop_worker(w, true);
        results[i] = ConformerResult{};
        results[i].error = "no result after " + std::to_string(static_cast<int>(hang_limit_s)) +
                           " s: worker killed (Open Babel hung on this molecule)";
        spawn_worker(w, pool, options);
      } else {
        continue;
      }
      ++done;
      if (progress) progress(done, total);
      assign(w);
    }
  }
  for (auto& w : pool) stop_worker(w, false);
  // Anything left unassigned (only when workers could not be restarted) is computed here.
  for (size_t i = 0; i < total; ++i) {
    if (results[i].ok || !results[i].error.empty()) continue;
    results[i] = generate_conformer_locked(molblocks[i], options);
    ++done;
    if (progress) progress(done, total);
  }
  return results;
}

// ---- text conversions ----------------------------------------------------------------------------------------

std::string molecule_to_molblock(const Molecule& mol) {
  const int n = mol.num_atoms();
  LARMOR_CHECK(n > 0 && n <= 999, "molecule_to_molblock: " + (mol.id.empty() ? std::string("molecule") : mol.id) +
                                      " has " + std::to_string(n) + " atoms (V2000 holds 1..999)");
  LARMOR_CHECK(mol.bonds.size() <= 999, "molecule_to_molblock: " + mol.id + " has " +
                                            std::to_string(mol.bonds.size()) + " bonds (V2000 holds up to 999)");
  std::string out;
  std::string title = mol.id.empty() ? mol.title : mol.id;
  for (char& c : title)
    if (c == '\n' || c == '\r') c = ' ';
  out += title.substr(0, 80) + "\n";
  out += "  larmor          0D\n\n";
  char line[128];
  std::snprintf(line, sizeof line, "%3d%3d  0  0  0  0  0  0  0  0999 V2000\n", n, static_cast<int>(mol.bonds.size()));
  out += line;
  std::vector<std::pair<int, int>> charges;
  for (int i = 0; i < n; ++i) {
    const Atom& a = mol.atoms[static_cast<size_t>(i)];
    const char* sym = element_symbol(a.element);
    LARMOR_CHECK(a.element >= 1 && a.element <= 118,
                 "molecule_to_molblock: " + mol.id + " atom " + std::to_string(i) + " has atomic number " +
                     std::to_string(a.element));
    int ccc = 0;  // atom-block charge code: 1..3 = +3..+1, 5..7 = -1..-3
    switch (a.formal_charge) {
      case 3: ccc = 1; break;
      case 2: ccc = 2; break;
      case 1: ccc = 3; break;
      case -1: ccc = 5; break;
      case -2: ccc = 6; break;
      case -3: ccc = 7; break;
      default: break;
    }
    if (a.formal_charge != 0) charges.emplace_back(i + 1, a.formal_charge);
    int parity = 0;
    switch (a.chirality) {
      case Chirality::Clockwise: parity = 1; break;
      case Chirality::CounterClockwise: parity = 2; break;
      case Chirality::Unspecified: parity = 3; break;
      case Chirality::None: break;
    }
    std::snprintf(line, sizeof line, "%10.4f%10.4f%10.4f %-3s 0%3d%3d  0  0  0  0  0  0  0  0  0\n", 0.0, 0.0, 0.0,
                  sym, ccc, parity);
    out += line;
  }
  // Atoms on a (non-aromatic) double bond: the reference end of a stereo single bond next to it.
  std::vector<bool> on_double(static_cast<size_t>(n), false);
  for (const Bond& b : mol.bonds)
    if (b.type == BondType::Double && b.a >= 0 && b.a < n && b.b >= 0 && b.b < n) on_double[b.a] = on_double[b.b] = true;
  for (size_t k = 0; k < mol.bonds.size(); ++k) {
    const Bond& b = mol.bonds[k];
    LARMOR_CHECK(b.a >= 0 && b.a < n && b.b >= 0 && b.b < n && b.a != b.b,
                 "molecule_to_molblock: " + mol.id + " bond " + std::to_string(k) + " joins atoms " +
                     std::to_string(b.a) + " and " + std::to_string(b.b) + " (molecule has " + std::to_string(n) +
                     " atoms)");
    int type = 1;
    switch (b.type) {
      case BondType::Single: type = 1; break;
      case BondType::Double: type = 2; break;
      case BondType::Triple: type = 3; break;
      case BondType::Aromatic: type = 4; break;
    }
    // Molecule::BondStereo is SMILES direction on a->b ("a/b" = Up). Open Babel reads 0D flags as the side of
    // the substituent seen from the double-bond atom (equal flags on both ends = cis), so a bond written from
    // the substituent to the double-bond atom ("S/D" == "D\\S") has its flag flipped. A single bond between two
    // double bonds (conjugated dienes) is read from its first atom.
    int stereo = 0;
    if (b.type == BondType::Single && b.stereo != BondStereo::None) {
      bool up = b.stereo == BondStereo::Up;
      if (on_double[b.b] && !on_double[b.a]) up = !up;
      stereo = up ? 1 : 6;
    }
    std::snprintf(line, sizeof line, "%3d%3d%3d%3d\n", b.a + 1, b.b + 1, type, stereo);
    out += line;
  }
  for (size_t k = 0; k < charges.size(); k += 8) {
    const size_t m = std::min<size_t>(8, charges.size() - k);
    std::snprintf(line, sizeof line, "M  CHG%3zu", m);
    out += line;
    for (size_t j = 0; j < m; ++j) {
      std::snprintf(line, sizeof line, " %3d %3d", charges[k + j].first, charges[k + j].second);
      out += line;
    }
    out += "\n";
  }
  out += "M  END\n";
  return out;
}

std::string smiles_to_molblock(const std::string& smiles) {
  std::lock_guard<std::mutex> lock(ob_mutex());
  warm_up_locked();
  ObLogCapture capture;
  OpenBabel::OBConversion conv;
  OpenBabel::OBMol mol;
  LARMOR_CHECK(conv.SetInAndOutFormats("smi", "mol"), "smiles_to_molblock: Open Babel has no smi/mol format plugins");
  LARMOR_CHECK(!smiles.empty() && conv.ReadString(&mol, smiles) && mol.NumAtoms() > 0,
               "smiles_to_molblock: invalid SMILES '" + smiles + "'" +
                   (ObLogCapture::messages().empty() ? "" : ": " + ObLogCapture::messages()));
  mol.AddHydrogens();
  mol.SetTitle(smiles.c_str());
  return conv.WriteString(&mol);
}

}  // namespace larmor::chem
