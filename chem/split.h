// The train/valid/test split: by molecule, never by spectrum, and identical for every source.
//
// A molecule's part is a pure function of (group key, seed): no state, no counters, no order
// dependence. So the NMR8K record, the pb-table row and the literature record of one structure land in
// the same part whichever file is read first, in every run and on every machine, and no test molecule
// ever reaches training in assigned or unassigned form. The hash is written out here (FNV-1a over the
// key's bytes, finished with SplitMix64 mixed with the seed) because std::hash is not stable across
// standard libraries or builds.
//
// Grouping: the key is the first InChIKey block (14 characters: the connectivity layer), so
// stereoisomers, repeats and re-deposited records share a key; without an InChIKey it is
// the canonical SMILES with the stereo marks '@', '/', '\' removed. The key is only as consistent as
// the toolkit that computed it: compute InChIKey/SMILES with the same toolkit for every source.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

#include "chem/molecule.h"

namespace larmor::chem {

enum class Split : uint8_t { Train = 0, Valid = 1, Test = 2 };
inline constexpr int kNumSplits = 3;
const char* split_name(Split s);  // "train", "valid", "test"

// The fractions of the split: [0, 0.8) train, [0.8, 0.9) valid, [0.9, 1) test.
inline constexpr double kTrainFraction = 0.8;
inline constexpr double kValidFraction = 0.1;

// Grouping key of a molecule (see the top comment). Throws larmor::Error naming the molecule's id when
// it has neither an InChIKey nor a SMILES.
std::string split_group_key(const Molecule& mol);

// 64-bit hash of the key's bytes mixed with the seed; stable across builds and platforms.
uint64_t split_hash(std::string_view group_key, uint64_t seed);

// The part of a group key for a seed.
Split split_of(std::string_view group_key, uint64_t seed);
inline Split split_of(const Molecule& mol, uint64_t seed) { return split_of(split_group_key(mol), seed); }

}  // namespace larmor::chem
