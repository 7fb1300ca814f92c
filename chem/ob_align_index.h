// Building a retrieval index (chem/align_index.h) from a SMILES or SD file through Open Babel: every record is
// parsed (chem/ob_molecule.h: input atom order, hydrogens added, salts reduced to the largest fragment), its
// 2-D graph featurised as the alignment model's training data was (align_graph_input: heavy-atom graph, no
// conformer needed) and embedded in batches by the model's graph tower.
//
// Why it is built this way: a library file is the user's, so one bad record must not end the run. A record
// Open Babel cannot read, or whose graph the featuriser rejects, is reported through the callback with its
// record number and skipped; a molecule without carbon is skipped and counted (it cannot have a 13C
// spectrum). Records stream through the builder, so memory holds one batch of graphs plus the embeddings.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "chem/align_index.h"
#include "chem/ob_molecule.h"

namespace larmor::chem {

struct AlignLibraryStats {
  int64_t records = 0;    // records read (good and bad)
  int64_t indexed = 0;    // molecules in the index
  int64_t bad = 0;        // records that could not be read or featurised (each reported)
  int64_t no_carbon = 0;  // molecules skipped for having no carbon
};

// `on_problem` receives one message per bad record ("lib.smi:7: ..." / "lib.sdf record 3 (line 41): ...").
// Throws larmor::Error when the file cannot be opened. The index's source is the library path; model_path is
// left for the caller.
AlignIndex build_align_index_from_library(AlignModel& model, const std::string& library_path,
                                          const std::function<void(const std::string&)>& on_problem = {},
                                          AlignLibraryStats* stats = nullptr, int64_t batch = 256,
                                          MoleculeFormat format = MoleculeFormat::Auto);

}  // namespace larmor::chem
