// Split by hashed group key: see chem/split.h for why the part is a pure function of (key, seed).
#include "chem/split.h"

#include "engine/error.h"

namespace larmor::chem {

namespace {

// FNV-1a, 64-bit (offset basis and prime of the published definition).
uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// SplitMix64 finaliser: spreads every input bit over the whole word, so neighbouring seeds or keys
// that differ in one byte give unrelated splits.
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

const char* split_name(Split s) {
  switch (s) {
    case Split::Train: return "train";
    case Split::Valid: return "valid";
    case Split::Test: return "test";
  }
  return "?";
}

std::string split_group_key(const Molecule& mol) {
  if (!mol.inchikey.empty()) {
    // First block = everything before the first '-' (14 characters in a well-formed key).
    size_t dash = mol.inchikey.find('-');
    return "inchikey:" + mol.inchikey.substr(0, dash == std::string::npos ? mol.inchikey.size() : dash);
  }
  if (!mol.smiles.empty()) {
    std::string key = "smiles:";
    key.reserve(key.size() + mol.smiles.size());
    for (char c : mol.smiles)
      if (c != '@' && c != '/' && c != '\\') key.push_back(c);
    return key;
  }
  throw Error("split_group_key: molecule '" + mol.id + "' has neither an InChIKey nor a SMILES to group it by");
}

uint64_t split_hash(std::string_view group_key, uint64_t seed) {
  return splitmix64(fnv1a64(group_key) ^ splitmix64(seed));
}

Split split_of(std::string_view group_key, uint64_t seed) {
  // Top 53 bits -> a double in [0, 1) exactly.
  double u = static_cast<double>(split_hash(group_key, seed) >> 11) * 0x1.0p-53;
  if (u < kTrainFraction) return Split::Train;
  if (u < kTrainFraction + kValidFraction) return Split::Valid;
  return Split::Test;
}

}  // namespace larmor::chem
