// Reading a model config from its JSON text, shared by ShiftModelConfig and AlignModelConfig: both parse the
// text, require an object, hand each key to the config's own field switch and refuse unknown keys and values
// of the wrong type, naming the key. Only the framing lives here; which keys exist stays with each config.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace larmor {

// Calls read_field(key, value) for each key of the JSON object in `text`; read_field returns false for a key
// it does not know. `fail` (which must throw) gets "invalid JSON: ...", "JSON must be an object",
// "unknown key \"k\"" or "bad value type for \"k\": ..." (a value read_field could not convert).
template <typename Fail, typename ReadField>
void read_config_json(const std::string& text, Fail&& fail, ReadField&& read_field) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const std::exception& e) {
    fail(std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) fail("JSON must be an object");
  std::string key;
  try {
    for (auto it = j.begin(); it != j.end(); ++it) {
      key = it.key();
      if (!read_field(key, it.value())) fail("unknown key \"" + key + "\"");
    }
  } catch (const nlohmann::json::exception& e) {
    fail("bad value type for \"" + key + "\": " + e.what());
  }
}

}  // namespace larmor
