// 3D conformers through Open Babel: OBBuilder (fragment-based 3D build from connectivity) followed by an
// MMFF94 minimisation (UFF when MMFF94 has no parameters for the molecule), one conformer per molecule,
// deterministic for a seed, and a process-parallel batch driver for whole datasets.
//
// The unit of work is an MDL V2000 molblock that already holds every hydrogen as an explicit atom, in
// exactly the atom order the caller wants coordinates for (chem::Molecule order, see molecule.h): the
// result's coords[i] belongs to atom i of the molblock. Working from text keeps this API independent of
// how the caller built its molecule, and the same text is what crosses the pipe to worker processes.
//
// Determinism: each molecule seeds the C library generator that OBBuilder draws from with a hash of
// (options.seed, the molblock's connection table; not its title/timestamp lines), so a molecule gets the same
// coordinates whichever worker, thread or run computes it, and the batch driver returns exactly what calling generate_conformer() on each molblock
// in turn returns. The per-molecule time limit is a safety net: a molecule that hits it (instead of
// max_steps or convergence) depends on machine speed and is marked so in ConformerResult::hit_time_limit.
//
// Quality: MMFF94 (UFF fallback) minimised with L-BFGS to an RMS force of force_tolerance; every result has
// passed a geometry check (bonded distances within 0.6-1.5x the covalent radii sum, no two atoms beyond 1-3
// closer than half their van der Waals radii sum) and, when stereo_ok, reproduces every specified
// tetrahedral centre and cis/trans double bond of the molblock.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "chem/molecule.h"

namespace larmor::chem {

struct ConformerOptions {
  uint64_t seed = 1;
  int max_steps = 500;          // minimiser (L-BFGS) iterations per build
  double time_limit_s = 10.0;   // per-molecule wall-clock budget for minimisation and rebuilds; the batch driver
                                // kills a worker silent for 2 * time_limit_s + 30 s (e.g. stuck in the builder)
  std::string forcefield = "MMFF94";  // "MMFF94", "MMFF94s", "UFF", "GAFF", "Ghemical"; UFF is the fallback
  double force_tolerance = 0.2;       // converged when the RMS atomic force is below this (kcal/mol/Å)
  int attempts = 3;             // rebuilds with a derived seed while the geometry or the stereo check fails
};

struct ConformerResult {
  bool ok = false;
  std::vector<std::array<float, 3>> coords;  // (N, 3) Å, molblock atom order; empty when !ok
  std::string forcefield_used;               // "MMFF94", or "UFF" after a fallback; empty when !ok
  double energy = 0.0;                       // final force-field energy, kcal/mol
  double rms_force = 0.0;                    // RMS atomic force at the end, kcal/mol/Å
  int steps = 0;                             // minimiser iterations of the returned build
  int attempt = 0;                           // 0 = built with the molecule's own seed; > 0 = a rebuild
  bool stereo_ok = true;                     // false: no attempt reproduced the input's stereo (warning says which)
  bool hit_time_limit = false;               // minimisation stopped by time_limit_s (result then timing-dependent)
  std::string warning;                       // non-fatal notes (UFF fallback and why, stereo not reproduced)
  std::string error;                         // why !ok
};

// One molecule, in this process. Never throws for bad input: problems come back as ok=false + error.
// Not re-entrant across threads (Open Babel keeps global state): calls from several threads are
// serialised by an internal lock; use generate_conformers() for parallel work.
ConformerResult generate_conformer(const std::string& molblock_with_explicit_h, const ConformerOptions& options);

// Progress: called on the calling thread after each finished molecule with (done, total). It runs while the
// module's lock is held: it must not call generate_conformer() or smiles_to_molblock().
using ConformerProgress = std::function<void(size_t done, size_t total)>;

// Many molecules on `workers` worker processes (<= 0: all cores; forked from this process, which must not be
// inside Open Babel on another thread). results[i] belongs to molblocks[i] and is bitwise identical to
// generate_conformer(molblocks[i], options) (unless a time limit was hit). A worker that crashes or hangs on
// a molecule costs only that molecule (ok=false, error says so); it is replaced. Measured on NMRShiftDB2
// molecules (bench/bench_conformer.cpp, defaults): ~27 molecules/s per core, 53/s with 2 workers on 2 cores.
std::vector<ConformerResult> generate_conformers(const std::vector<std::string>& molblocks,
                                                 const ConformerOptions& options, int workers = 0,
                                                 const ConformerProgress& progress = {});

// chem::Molecule -> MDL V2000 molblock (0D, all atoms including H in molecule order; no Open Babel).
// Bond types 1/2/3 and 4 (aromatic); formal charges in the atom block and in M  CHG lines.
// Stereo, in the MDL conventions Open Babel reads from 0D molblocks:
//   Atom::chirality  Clockwise -> parity 1, CounterClockwise -> parity 2, Unspecified -> 3. Clockwise means:
//     seen with the centre's hydrogen pointing away from the viewer (no H: its highest-index neighbour; a lone
//     pair of a 3-coordinate centre counts as that), its other neighbours in increasing atom index order run
//     clockwise. (With positions relative to the centre: the triple product of those three is negative.)
//   Bond::stereo on a single bond next to a double bond: SMILES direction of the bond read from a to b, as
//     chem/molecule.h defines it ("a/b" = Up). Written as Open Babel's 0D flags (1 / 6 = the substituent's side
//     seen from the double-bond atom; equal flags at both ends = cis), flipping the flag when the bond is stored
//     from the substituent to the double-bond atom. So F/C=C/F (trans) and F/C=C\F (cis) round-trip.
// Coordinates are written as zeros: the builder makes its own, and stereo comes from the fields above.
std::string molecule_to_molblock(const Molecule& mol);

// SMILES -> molblock with explicit hydrogens (Open Babel: SMILES atom order, then the added H grouped by
// heavy atom, i.e. chem::Molecule order), stereo kept as 0D parities. Throws larmor::Error on invalid SMILES.
// For tests, benchmarks and callers that start from SMILES without a chem::Molecule.
std::string smiles_to_molblock(const std::string& smiles);

}  // namespace larmor::chem
