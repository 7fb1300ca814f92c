// SMILES/SDF library -> retrieval index (see ob_align_index.h for why it is built this way).
#include "chem/ob_align_index.h"

#include <algorithm>
#include <utility>

#include "chem/align_data.h"
#include "engine/error.h"

namespace larmor::chem {

AlignIndex build_align_index_from_library(AlignModel& model, const std::string& library_path,
                                          const std::function<void(const std::string&)>& on_problem,
                                          AlignLibraryStats* stats, int64_t batch, MoleculeFormat format) {
  AlignLibraryStats st;
  AlignIndexBuilder builder(model, batch);
  MoleculeReader reader(library_path, format);
  MoleculeRecord rec;
  auto report = [&](const std::string& message) {
    ++st.bad;
    if (on_problem) on_problem(message);
  };
  while (reader.next(rec)) {
    ++st.records;
    if (!rec.ok()) {
      report(rec.error);
      continue;
    }
    const Molecule& mol = *rec.molecule;
    if (std::none_of(mol.atoms.begin(), mol.atoms.end(), [](const Atom& a) { return a.element == 6; })) {
      ++st.no_carbon;
      continue;
    }
    AlignMoleculeInput graph;
    try {
      graph = align_graph_input(mol);
    } catch (const Error& e) {
      report(reader.source() + " record " + std::to_string(rec.number) + " (line " + std::to_string(rec.line) +
             "): " + e.what());
      continue;
    }
    AlignIndexMolecule info = align_index_molecule(mol);
    if (info.name.empty()) info.name = rec.title;
    builder.add(std::move(graph), std::move(info));
  }
  AlignIndex index = builder.finish();
  index.source = library_path;
  st.indexed = index.size();
  if (stats) *stats = st;
  return index;
}

}  // namespace larmor::chem
