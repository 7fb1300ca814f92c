// Literature peak text parser (see peak_text.h for the formats and the approach).
//
// Pipeline: normalise (UTF-8 -> ASCII + marks) -> pair brackets (unpaired ones become spaces, so a missing
// ')' cannot swallow the rest of the text) -> split into top-level fragments -> in each fragment find the
// numbers that can be shifts -> attach the fragment's bracketed groups and bare words (multiplicity,
// integral, DEPT label, carbon count) to the peak before them. Header information (nucleus, field, solvent)
// is read from the text before the first peak. The list ends at a new header ("13C NMR", "HRMS", "IR", ...).
// Every step is bounded by the input length (no backtracking), so arbitrary input is cheap and safe.
#include "chem/peak_text.h"

#include <algorithm>
#include <charconv>
#include <cstdint>

namespace larmor::chem {

namespace {

constexpr size_t kMaxWarnings = 64;

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
char to_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = to_lower(c);
  return out;
}

std::string_view trim_view(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == kDeltaMark)) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == kDeltaMark)) --e;
  return s.substr(b, e - b);
}

bool contains_word_ci(std::string_view text, std::string_view word) {
  std::string low = lowercase(text), w = lowercase(word);
  for (size_t pos = low.find(w); pos != std::string::npos; pos = low.find(w, pos + 1)) {
    bool left = pos == 0 || !is_alpha(low[pos - 1]);
    bool right = pos + w.size() >= low.size() || !is_alpha(low[pos + w.size()]);
    if (left && right) return true;
  }
  return false;
}

bool contains_word(std::string_view text, std::string_view word) {
  for (size_t pos = text.find(word); pos != std::string_view::npos; pos = text.find(word, pos + 1)) {
    bool left = pos == 0 || !is_alnum(text[pos - 1]);
    bool right = pos + word.size() >= text.size() || !is_alnum(text[pos + word.size()]);
    if (left && right) return true;
  }
  return false;
}

// For messages: marks back to readable UTF-8, shortened.
std::string printable(std::string_view s, size_t max_len = 80) {
  std::string out;
  for (char c : trim_view(s)) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    switch (c) {
      case kDeltaMark: out += "\xCE\xB4"; break;
      case kBigDeltaMark: out += "\xCE\x94"; break;
      case kDegreeMark: out += "\xC2\xB0"; break;
      case kOpaqueMark: out += '?'; break;
      default: out += c;
    }
  }
  return out;
}

// ---- annotations ------------------------------------------------------------------------------------------

enum class Annotation { Empty, Integral, Count, Dept, Multiplicity, Coupling, Label };

// Lower-cased, '.' removed, spaces collapsed: "br. S" -> "br s".
std::string squash(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '.') continue;
    if (c == ' ' || c == kDeltaMark) {
      if (!out.empty() && out.back() != ' ') out += ' ';
      continue;
    }
    out += to_lower(c);
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// Multiplicity text (already squashed) without its "br"/"app"/"2 x"/"both" prefixes; nullopt if not one.
std::optional<std::string> multiplicity_of(std::string m) {
  bool prefixed = false;
  for (bool again = true; again;) {
    again = false;
    for (std::string_view pre : {"broad ", "broad", "br ", "br", "apparent ", "app ", "pseudo-", "pseudo ", "both ", "two "}) {
      if (m.size() >= pre.size() && m.compare(0, pre.size(), pre) == 0) {
        m.erase(0, pre.size());
        prefixed = true;
        again = true;
        break;
      }
    }
    // "2 x t", "2xt", "2 × t"
    size_t i = 0;
    while (i < m.size() && is_digit(m[i])) ++i;
    if (i > 0 && i < m.size()) {
      size_t j = i;
      while (j < m.size() && m[j] == ' ') ++j;
      if (j < m.size() && m[j] == 'x' && j + 1 < m.size() && (m[j + 1] == ' ' || is_alpha(m[j + 1]))) {
        m.erase(0, j + 1);
        while (!m.empty() && m[0] == ' ') m.erase(0, 1);
        again = true;
      }
    }
  }
  if (m.empty()) return prefixed ? std::optional<std::string>("br") : std::nullopt;
  static const char* const kNames[] = {"s",        "m",      "p",       "singlet", "doublet", "triplet", "quartet",
                                       "quintet",  "quint",  "quin",    "pent",    "pentet",  "sextet",  "sext",
                                       "sex",      "septet", "sept",    "sep",     "hept",    "heptet",  "multiplet",
                                       "mult",     "nonet",  "octet",   "dm",      "tm",      "qm",      "sm",
                                       "dquint",   "tquint", "dsept",   "dsex"};
  for (const char* n : kNames)
    if (m == n) return m;
  if (m.size() <= 5 && std::all_of(m.begin(), m.end(), [](char c) { return c == 'd' || c == 't' || c == 'q'; })) return m;
  if ((m.compare(0, 2, "ab") == 0 || m.compare(0, 3, "aa'") == 0 || m.compare(0, 2, "ax") == 0) && m.size() <= 12 &&
      std::all_of(m.begin(), m.end(), [](char c) { return is_alpha(c) || c == '\'' || c == '-' || c == ' ' || c == '2'; }))
    return m;
  return std::nullopt;
}

std::optional<int8_t> dept_of(std::string_view s) {
  s = trim_view(s);
  if (s == "C" || s == "Cq" || s == "qC" || s == "Cquat" || s == "C quat" || s == "Cq." || s == "quat") return 0;
  if (s == "CH") return 1;
  if (s == "CH2") return 2;
  if (s == "CH3") return 3;
  return std::nullopt;
}

// "3H", "3 H", "1.5H" -> 3, 3, 1.5
bool integral_of(std::string_view s, double& n) {
  s = trim_view(s);
  if (s.size() < 2 || (s.back() != 'H')) return false;
  std::string_view num = trim_view(s.substr(0, s.size() - 1));
  if (num.empty() || !is_digit(num.front())) return false;
  auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), n);
  return ec == std::errc() && end == num.data() + num.size() && n > 0 && n < 1000;
}

// "2C", "2 C", "2 x CH", "2xCH3" -> count (and DEPT when given)
bool count_of(std::string_view s, double& n, std::optional<int8_t>& dept) {
  s = trim_view(s);
  size_t i = 0;
  while (i < s.size() && is_digit(s[i])) ++i;
  if (i == 0 || i > 3) return false;
  std::string_view rest = trim_view(s.substr(i));
  if (!rest.empty() && (rest[0] == 'x' || rest[0] == 'X')) rest = trim_view(rest.substr(1));
  std::optional<int8_t> d = dept_of(rest);
  if (!d) return false;
  std::from_chars(s.data(), s.data() + i, n);
  if (rest != "C") dept = d;
  return n > 0;
}

Annotation annotate(Peak* peak, std::string_view item, std::optional<Nucleus> nucleus) {
  std::string_view s = trim_view(item);
  if (s.empty()) return Annotation::Empty;
  std::string low = lowercase(s);
  if (s.find('J') != std::string_view::npos || low.find("hz") != std::string::npos) return Annotation::Coupling;
  bool carbon = nucleus == Nucleus::C13;
  bool proton = nucleus == Nucleus::H1;
  double n = 0;
  if (integral_of(s, n)) {
    if (peak && !carbon && std::isnan(peak->intensity)) peak->intensity = n;
    return Annotation::Integral;
  }
  std::optional<int8_t> dept;
  if (s.size() >= 2 && (s[0] == 'x' || s[0] == 'X')) {  // "x 2" after a shift: two carbons/protons there
    std::string_view num = trim_view(s.substr(1));
    double k = 0;
    auto [end, ec] = std::from_chars(num.data(), num.data() + num.size(), k);
    if (!num.empty() && ec == std::errc() && end == num.data() + num.size() && k >= 1 && k < 100) {
      if (peak && carbon && std::isnan(peak->intensity)) peak->intensity = k;
      return Annotation::Count;
    }
  }
  if (count_of(s, n, dept)) {
    if (peak && !proton) {
      if (std::isnan(peak->intensity)) peak->intensity = n;
      if (dept && peak->mult == kMultUnknown) peak->mult = *dept;
    }
    return Annotation::Count;
  }
  if (std::optional<int8_t> d = dept_of(s)) {
    if (peak && !proton && peak->mult == kMultUnknown) peak->mult = *d;
    return Annotation::Dept;
  }
  std::string sq = squash(s);
  if (sq == "ppm" || sq == "mp" || sq == "ms") return Annotation::Label;
  if (std::optional<std::string> m = multiplicity_of(sq)) {
    if (peak && peak->pattern.empty()) peak->pattern = sq;
    return Annotation::Multiplicity;
  }
  return Annotation::Label;
}

// Splits a bracket group's text into items at ',' and ';' outside nested brackets.
std::vector<std::string_view> group_items(std::string_view g) {
  std::vector<std::string_view> out;
  int depth = 0;
  size_t start = 0;
  for (size_t i = 0; i <= g.size(); ++i) {
    char c = i < g.size() ? g[i] : ',';
    if (c == '(' || c == '[' || c == '{') ++depth;
    else if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
    else if ((c == ',' || c == ';') && depth == 0) {
      out.push_back(g.substr(start, i - start));
      start = i + 1;
    }
  }
  return out;
}

// ---- fragments --------------------------------------------------------------------------------------------

struct Group {
  size_t pos;  // offset in Fragment::flat where the group stood
  std::string text;
};

struct Fragment {
  std::string flat;  // top-level text, each bracket group replaced by one space
  std::vector<Group> groups;
  std::string raw;  // the fragment as written (normalised), for messages
};

// δ (optionally δH/δC, '=' or ':') followed by a number somewhere in `g`: the group lists shifts itself.
bool has_delta_number(std::string_view g) {
  for (size_t i = 0; i < g.size(); ++i) {
    if (g[i] != kDeltaMark) continue;
    size_t j = i + 1;
    while (j < g.size() && g[j] == ' ') ++j;
    if (j < g.size() && (g[j] == 'H' || g[j] == 'C' || g[j] == 'h' || g[j] == 'c') &&
        (j + 1 >= g.size() || !is_alpha(g[j + 1])))
      ++j;
    while (j < g.size() && (g[j] == ' ' || g[j] == '=' || g[j] == ':')) ++j;
    if (j < g.size() && (is_digit(g[j]) || (g[j] == '-' && j + 1 < g.size() && is_digit(g[j + 1])))) return true;
  }
  return false;
}

// A bracket group that is itself (part of) the peak list rather than an annotation: "(δC 97.2, 111.3)",
// "[δH 1.24 (3H, s)]", "(169.4, 157.3, 137.9)", "(9.76 ppm, d, 1H)", "(7.34-7.16 ppm, m, 5H)".
bool group_lists_shifts(std::string_view g) {
  if (has_delta_number(g)) return true;
  for (size_t p = g.find("ppm"); p != std::string_view::npos; p = g.find("ppm", p + 1)) {  // "(H-1 7.70 ppm)"
    size_t e = p;
    while (e > 0 && g[e - 1] == ' ') --e;
    size_t b = e;
    while (b > 0 && is_digit(g[b - 1])) --b;
    if (b < e && b >= 2 && g[b - 1] == '.' && is_digit(g[b - 2])) return true;
  }
  size_t i = 0;
  while (i < g.size() && g[i] == ' ') ++i;
  size_t d = i;
  while (i < g.size() && is_digit(g[i])) ++i;
  if (i == d || i + 1 >= g.size() || g[i] != '.' || !is_digit(g[i + 1])) return false;
  ++i;
  while (i < g.size() && is_digit(g[i])) ++i;
  while (i < g.size() && g[i] == ' ') ++i;
  return i == g.size() || g[i] == ',' || g[i] == ';' || g[i] == '-' || g.compare(i, 3, "ppm") == 0;
}

std::vector<Fragment> split_fragments(const std::string& t) {
  const size_t n = t.size();
  std::vector<int64_t> partner(n, -1);
  std::vector<size_t> stack;
  auto closer_of = [](char c) { return c == '(' ? ')' : c == '[' ? ']' : '}'; };
  for (size_t i = 0; i < n; ++i) {
    char c = t[i];
    if (c == '(' || c == '[' || c == '{') {
      stack.push_back(i);
    } else if (c == ')' || c == ']' || c == '}') {
      if (!stack.empty() && closer_of(t[stack.back()]) == c) {
        partner[stack.back()] = static_cast<int64_t>(i);
        partner[i] = static_cast<int64_t>(stack.back());
        stack.pop_back();
      }
    }
  }
  std::vector<Fragment> out;
  Fragment cur;
  auto finish = [&]() {
    out.push_back(std::move(cur));
    cur = Fragment{};
  };
  std::vector<bool> unwrapped(n, false);  // brackets of groups read as part of the list: act as separators
  size_t i = 0;
  while (i < n) {
    char c = t[i];
    bool bracket = c == '(' || c == '[' || c == '{' || c == ')' || c == ']' || c == '}';
    if (bracket && unwrapped[i]) {
      finish();
      ++i;
      continue;
    }
    if (bracket) {
      if ((c == '(' || c == '[' || c == '{') && partner[i] >= 0) {
        size_t close = static_cast<size_t>(partner[i]);
        if (group_lists_shifts(std::string_view(t).substr(i + 1, close - i - 1))) {
          unwrapped[close] = true;
          finish();
          ++i;
          continue;
        }
        cur.groups.push_back({cur.flat.size(), t.substr(i + 1, close - i - 1)});
        cur.flat += ' ';
        cur.raw.append(t, i, close - i + 1);
        i = close + 1;
      } else {  // unpaired bracket: ignored
        cur.flat += ' ';
        cur.raw += c;
        ++i;
      }
      continue;
    }
    if (c == ',' || c == ';') {
      finish();
      ++i;
      continue;
    }
    if (c == '.' && (i + 1 == n || t[i + 1] == ' ') && i > 0 && !is_digit(t[i - 1])) {  // sentence end
      finish();
      ++i;
      continue;
    }
    if (c == 'a' && t.compare(i, 3, "and") == 0 && (i == 0 || !is_alnum(t[i - 1])) && (i + 3 >= n || !is_alnum(t[i + 3]))) {
      finish();
      i += 3;
      continue;
    }
    cur.flat += c;
    cur.raw += c;
    ++i;
  }
  finish();
  return out;
}

// ---- numbers that can be shifts ---------------------------------------------------------------------------

struct Candidate {
  size_t begin = 0, end = 0;
  double lo = 0, hi = 0;
  bool range = false;
  bool decimal = false;
};

// Unsigned or signed decimal number at s[i]; false if none.
bool number_at(const std::string& s, size_t i, size_t& end, double& value, bool& decimal) {
  size_t j = i;
  bool negative = false;
  if (j < s.size() && (s[j] == '-' || s[j] == '+')) {
    negative = s[j] == '-';
    ++j;
  }
  size_t digits_start = j;
  while (j < s.size() && is_digit(s[j])) ++j;
  if (j == digits_start || j - digits_start > 6) return false;
  decimal = false;
  if (j + 1 < s.size() && s[j] == '.' && is_digit(s[j + 1])) {
    decimal = true;
    ++j;
    size_t frac = j;
    while (j < s.size() && is_digit(s[j])) ++j;
    if (j - frac > 8) return false;
  }
  auto [ptr, ec] = std::from_chars(s.data() + digits_start, s.data() + j, value);
  if (ec != std::errc() || ptr != s.data() + j) return false;
  if (negative) value = -value;
  end = j;
  return true;
}

bool is_unit_word(const std::string& w) {
  static const char* const kUnits[] = {"mhz", "hz",  "khz", "ghz",  "k",     "ml",   "l",     "ul",  "mg",   "g",
                                       "kg",  "mmol", "mol", "umol", "mm",    "um",   "nm",    "cm",  "h",    "hr",
                                       "hrs", "min", "sec", "equiv", "eq",   "x",    "times", "c",   "da",   "kda",
                                       "wt",  "bar", "atm", "torr", "mmhg",  "days", "day",   "months", "years", "ev",
                                       "kcal", "kj", "mv",  "v",    "ma",    "a",    "w",     "ppb", "carbons", "protons",
                                       "carbon", "proton", "signals", "peaks", "fold"};
  for (const char* u : kUnits)
    if (w == u) return true;
  return false;
}

// The word ending at f[q-1] is an atom label ("C1", "C-8a", "H-3'", "H2-4"): "C1 = 56.03 ppm" is a shift.
bool atom_label_before(const std::string& f, size_t q) {
  size_t b = q;
  while (b > 0 && (is_alnum(f[b - 1]) || f[b - 1] == '-' || f[b - 1] == '\'')) --b;
  std::string_view w = std::string_view(f).substr(b, q - b);
  if (w.size() < 2 || w.size() > 8 || (w[0] != 'C' && w[0] != 'H' && w[0] != 'N')) return false;
  size_t i = 1;
  if (i < w.size() && is_alpha(w[i]) && w[i] != 'J') ++i;  // "Ha-10", "Cq"
  if (i < w.size() && w[i] == '-') ++i;
  if (i >= w.size() || !is_digit(w[i])) return false;
  while (i < w.size() && (is_digit(w[i]) || w[i] == '-')) ++i;
  while (i < w.size() && (is_alpha(w[i]) || w[i] == '\'')) ++i;
  return i == w.size();
}

std::vector<Candidate> find_candidates(const std::string& f) {
  std::vector<Candidate> out;
  const size_t n = f.size();
  size_t i = 0;
  auto skip_token = [&](size_t from) {
    size_t j = from;
    if (j < n && (f[j] == '-' || f[j] == '+')) ++j;
    while (j < n && (is_alnum(f[j]) || f[j] == '.')) ++j;
    i = std::max(j, from + 1);
  };
  while (i < n) {
    char c = f[i];
    bool sign = (c == '-' || c == '+') && i + 1 < n && is_digit(f[i + 1]);
    if (!is_digit(c) && !sign) {
      ++i;
      continue;
    }
    char prev = i > 0 ? f[i - 1] : ' ';
    // Part of a word or label: "H2", "D2O", "C-13" handled below, "2'", "1.2.3".
    bool slash_list = prev == '/' && i >= 2 && is_digit(f[i - 2]);  // "3.06/2.95": two shifts
    bool glued_delta = (prev == 'C' || prev == 'H' || prev == 'c' || prev == 'h') && i >= 2 && f[i - 2] == kDeltaMark;
    if ((!glued_delta && is_alnum(prev)) || prev == '.' || prev == '\'' || prev == '_' || (prev == '/' && !slash_list) ||
        prev == kOpaqueMark || prev == '^' || prev == '#') {
      skip_token(i);
      continue;
    }
    if (!sign && prev == '-' && i >= 2 && (is_alnum(f[i - 2]) || f[i - 2] == '\'')) {  // "H-1", "C-13"
      skip_token(i);
      continue;
    }
    size_t end = 0;
    double lo = 0;
    bool decimal = false;
    if (!number_at(f, i, end, lo, decimal)) {
      skip_token(i);
      continue;
    }
    char after = end < n ? f[end] : ' ';
    if (is_alpha(after)) {
      bool ppm = f.compare(end, 3, "ppm") == 0 && (end + 3 >= n || !is_alpha(f[end + 3]));
      if (!ppm) {  // "2H", "13C", "3JHH"
        skip_token(i);
        continue;
      }
    }
    if ((after == '.' || after == ':' || after == ',') && end + 1 < n && is_digit(f[end + 1])) {  // "1.2.3", "9:1"
      skip_token(i);
      continue;
    }
    bool slash_next = after == '/' && end + 1 < n && is_digit(f[end + 1]);
    if (after == '%' || after == kDegreeMark || (after == '/' && !slash_next) || after == kOpaqueMark || after == '\'' || after == '^' ||
        after == '+' || after == '=') {
      i = end;
      continue;
    }
    // Range "7.26-7.31", "7.26 - 7.31", "7.26 to 7.31".
    Candidate cand;
    cand.begin = i;
    cand.lo = cand.hi = lo;
    cand.decimal = decimal;
    size_t k = end;
    while (k < n && f[k] == ' ') ++k;
    size_t k2 = std::string::npos;
    if (k < n && (f[k] == '-' || f[k] == '~')) k2 = k + 1;
    else if (f.compare(k, 3, "to ") == 0) k2 = k + 3;
    size_t range_end = end;
    if (k2 != std::string::npos) {
      while (k2 < n && f[k2] == ' ') ++k2;
      size_t e2 = 0;
      double hi = 0;
      bool dec2 = false;
      if (k2 < n && is_digit(f[k2]) && number_at(f, k2, e2, hi, dec2)) {
        char a2 = e2 < n ? f[e2] : ' ';
        bool a2_ok = !is_alpha(a2) || (f.compare(e2, 3, "ppm") == 0);
        if (a2_ok && a2 != ':' && a2 != '%' && a2 != kDegreeMark) {
          cand.range = true;
          cand.lo = std::min(lo, hi);
          cand.hi = std::max(lo, hi);
          cand.decimal = decimal || dec2;
          range_end = e2;
        }
      }
    }
    cand.end = range_end;
    // A unit after the number: "400 MHz", "0.5 mL", "25 °C", "2 H" (integral), "2 x".
    size_t w = range_end;
    if (f.compare(w, 3, "ppm") == 0) w += 3;
    while (w < n && f[w] == ' ') ++w;
    if (w < n && (f[w] == kDegreeMark || f[w] == '%')) {
      i = range_end;
      continue;
    }
    size_t w_end = w;
    while (w_end < n && is_alpha(f[w_end])) ++w_end;
    if (w_end > w) {
      std::string word = lowercase(std::string_view(f).substr(w, w_end - w));
      bool integral_h = (w_end - w == 1) && f[w] == 'H';
      // "131.1 x 2": two carbons at 131.1; "174.8 C": a DEPT label. Units only after integers.
      bool multiplier = (word == "x" || word == "c") && cand.decimal;
      if (integral_h || (is_unit_word(word) && !multiplier && !(word == "c" && f[w] != 'C') &&
                         (w_end >= n || !is_digit(f[w_end])))) {
        i = range_end;
        continue;
      }
    }
    // What comes before: "J = 8.0", "T = 25", "Δδ = -0.09" are not shifts; "δ = 7.26" and "δ: 7.26" are.
    size_t p = i;
    while (p > 0 && f[p - 1] == ' ') --p;
    if (p > 0) {
      char pc = f[p - 1];
      if (pc == '=') {
        size_t q = p - 1;
        while (q > 0 && f[q - 1] == ' ') --q;
        bool delta = q > 0 && (f[q - 1] == kDeltaMark || (q >= 3 && f.compare(q - 3, 3, "ppm") == 0) ||
                               ((f[q - 1] == 'H' || f[q - 1] == 'C') && q >= 2 && f[q - 2] == kDeltaMark));
        if (!delta && q > 0 && !atom_label_before(f, q)) {  // q == 0: "[δ, ppm] = 0.00"
          i = range_end;
          continue;
        }
      } else if (pc == 'J' && (p < 2 || !is_alpha(f[p - 2]))) {
        i = range_end;
        continue;
      } else if (pc == 'x' && (p < 2 || !is_alpha(f[p - 2]))) {  // "22.2 x 2": a multiplier, not a shift
        i = range_end;
        continue;
      } else if (pc == kBigDeltaMark) {
        i = range_end;
        continue;
      }
    }
    out.push_back(cand);
    i = range_end;
  }
  return out;
}

// Words left in a fragment besides its numbers must all be harmless for a bare integer to count as a shift.
bool only_harmless_words(const std::string& flat, size_t from, const std::vector<Candidate>& cands) {
  size_t i = from;
  size_t next = 0;
  while (i < flat.size()) {
    while (next < cands.size() && cands[next].end <= i) ++next;
    if (next < cands.size() && cands[next].begin <= i) {
      i = cands[next].end;
      continue;
    }
    if (!is_alpha(flat[i])) {
      ++i;
      continue;
    }
    size_t e = i;
    while (e < flat.size() && (is_alnum(flat[e]) || flat[e] == '.')) ++e;
    std::string word = squash(std::string_view(flat).substr(i, e - i));
    if (word != "ppm" && word != "and" && !multiplicity_of(word)) return false;
    i = e;
  }
  return true;
}

// ---- header -----------------------------------------------------------------------------------------------

std::optional<Nucleus> nucleus_in(std::string_view t) {
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] == kDeltaMark && i + 1 < t.size() && (t[i + 1] == 'H' || t[i + 1] == 'C') &&
        (i + 2 >= t.size() || !is_alpha(t[i + 2])))
      return t[i + 1] == 'H' ? Nucleus::H1 : Nucleus::C13;
    if (!is_digit(t[i]) || (i > 0 && is_alnum(t[i - 1]))) continue;
    size_t j = i;
    while (j < t.size() && is_digit(t[j]) && j - i < 3) ++j;
    size_t k = j;
    while (k < t.size() && t[k] == ' ') ++k;
    if (k >= t.size() || !is_alpha(t[k])) continue;
    std::string label(t.substr(i, j - i));
    label += t[k];
    size_t m = k + 1;
    if (m < t.size() && t[m] == '{') {  // "13C{1H} NMR"
      size_t close = t.find('}', m);
      if (close == std::string_view::npos || close - m > 8) continue;
      m = close + 1;
    }
    while (m < t.size() && (t[m] == ' ' || t[m] == '-')) ++m;
    if (t.size() - m >= 3 && lowercase(t.substr(m, 3)) == "nmr")
      if (std::optional<Nucleus> nu = parse_nucleus(label)) return nu;
  }
  return std::nullopt;
}

// Last "δH"/"δC" (also "δ H", "δc") in `t`: which nucleus the following shifts belong to.
std::optional<Nucleus> delta_context(std::string_view t) {
  std::optional<Nucleus> out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] != kDeltaMark) continue;
    size_t j = i + 1;
    while (j < t.size() && t[j] == ' ') ++j;
    if (j >= t.size() || (j + 1 < t.size() && is_alpha(t[j + 1]))) continue;
    if (t[j] == 'H' || t[j] == 'h') out = Nucleus::H1;
    if (t[j] == 'C' || t[j] == 'c') out = Nucleus::C13;
  }
  return out;
}

double field_in(std::string_view t) {
  std::string low = lowercase(t);
  for (size_t pos = low.find("mhz"); pos != std::string::npos; pos = low.find("mhz", pos + 1)) {
    size_t e = pos;
    while (e > 0 && low[e - 1] == ' ') --e;
    size_t b = e;
    while (b > 0 && (is_digit(low[b - 1]) || low[b - 1] == '.')) --b;
    if (b == e || (b > 0 && is_alpha(low[b - 1]))) continue;
    double v = 0;
    auto [ptr, ec] = std::from_chars(low.data() + b, low.data() + e, v);
    if (ec == std::errc() && ptr == low.data() + e && v >= 10 && v <= 2000) return v;
  }
  return NAN;
}

bool mentions_solvent(std::string_view t) {
  std::string low = lowercase(t);
  static const char* const kKeys[] = {"cdcl3",  "chloroform", "dmso",   "sulfoxide", "sulphoxide", "methanol", "cd3od",
                                      "meod",   "acetone",    "d2o",    "h2o",       "water",      "c6d6",     "benzene",
                                      "pyridin", "c5d5n",     "cd3cn",  "acetonitril", "mecn",     "thf",      "tetrahydrofuran",
                                      "toluene", "ccl4",      "cd2cl2", "dichloromethane", "dmf",  "tfa",      "trifluoroacetic",
                                      "dioxane", "nitromethane", "cs2", "chcl3",     "cd3oh",      "ch3od",    "meoh",
                                      "metanol", "acn",       "c2d2cl4", "cdci3",    "cd3)2co",    "cd3)2so",  "deuterium"};
  for (const char* k : kKeys)
    if (low.find(k) != std::string::npos) return true;
  return false;
}

// Field and solvent from header text (the nucleus is read by the caller: the first one named wins).
void read_header(std::string_view text, PeakText& out, bool& have_solvent) {
  if (std::isnan(out.field_MHz)) out.field_MHz = field_in(text);
  if (!have_solvent) {
    for (std::string_view item : group_items(text)) {
      if (!mentions_solvent(item)) continue;
      std::string ascii = printable(item, 200);
      Solvent s = parse_solvent(ascii);
      if (s == Solvent::Unknown) continue;
      out.solvent = s;
      out.solvent_text = ascii;
      have_solvent = true;
      break;
    }
  }
}

}  // namespace

std::string normalise_peak_text(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += (c < 0x20 || c == 0x7f) ? ' ' : static_cast<char>(c);
      ++i;
      continue;
    }
    // UTF-8 decode; invalid sequences become one opaque mark per byte.
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    uint32_t cp = len == 4 ? (c & 0x07) : len == 3 ? (c & 0x0F) : (c & 0x1F);
    bool ok = len >= 2 && c < 0xF5 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (!ok) {
      out += kOpaqueMark;
      ++i;
      continue;
    }
    i += len;
    if ((cp >= 0x2010 && cp <= 0x2015) || cp == 0x2212 || cp == 0xFE63 || cp == 0xFF0D || cp == 0x2043 || cp == 0x2E3A)
      out += '-';
    else if (cp == 0x00A0 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F || cp == 0x205F || cp == 0x3000)
      out += ' ';
    else if ((cp >= 0x200B && cp <= 0x200D) || cp == 0xFEFF || cp == 0x00AD || cp == 0x2060)
      continue;  // zero-width characters and soft hyphens
    else if (cp == 0x03B4 || cp == 0x00F0 || cp == 0x1E9F || cp == 0x2E39 || cp == 0x1D6C5 || cp == 0x1D6FF || cp == 0x1D739 || cp == 0x1D773 || cp == 0x1D7AD)
      out += kDeltaMark;
    else if (cp == 0x0394 || cp == 0x2206)
      out += kBigDeltaMark;
    else if (cp == 0x00B0 || cp == 0x00BA || cp == 0x02DA)
      out += kDegreeMark;
    else if (cp == 0x2103) {
      out += kDegreeMark;
      out += 'C';
    } else if (cp == 0x2032 || cp == 0x2019 || cp == 0x2018 || cp == 0x00B4 || cp == 0x02B9 || cp == 0x02BC || cp == 0x2035)
      out += '\'';
    else if (cp == 0x2033 || cp == 0x2036)
      out += "''";
    else if (cp == 0x201C || cp == 0x201D)
      out += '"';
    else if (cp == 0x00D7 || cp == 0x2715 || cp == 0x2A2F)
      out += 'x';
    else if (cp == 0x00B7 || cp == 0x2219)
      out += '.';
    else if (cp == 0x2026)
      out += "...";
    else if (cp >= 0x2080 && cp <= 0x2089)
      out += static_cast<char>('0' + (cp - 0x2080));
    else if (cp >= 0x2070 && cp <= 0x2079 && cp != 0x2071 && cp != 0x2072 && cp != 0x2073)
      out += static_cast<char>('0' + (cp - 0x2070));
    else if (cp == 0x00B9)
      out += '1';
    else if (cp == 0x00B2)
      out += '2';
    else if (cp == 0x00B3)
      out += '3';
    else if (cp == 0xFF0C || cp == 0x3001)
      out += ',';
    else if (cp == 0xFF1B)
      out += ';';
    else if (cp == 0xFF1A)
      out += ':';
    else if (cp == 0xFF08)
      out += '(';
    else if (cp == 0xFF09)
      out += ')';
    else if (cp == 0xFF1D)
      out += '=';
    else
      out += kOpaqueMark;
  }
  return out;
}

PeakText parse_peak_text(std::string_view text, std::optional<Nucleus> expected) {
  PeakText out;
  auto warn = [&](std::string w) {
    if (out.warnings.size() < kMaxWarnings) out.warnings.push_back(std::move(w));
    else if (out.warnings.size() == kMaxWarnings) out.warnings.push_back("(more warnings not shown)");
  };
  const std::string t = normalise_peak_text(text);
  std::vector<Fragment> frags = split_fragments(t);

  // Pass 1: numbers per fragment; the first fragment holding a shift ends the header.
  std::vector<std::vector<Candidate>> cands(frags.size());
  std::vector<bool> clean(frags.size());
  std::vector<size_t> body_from(frags.size(), 0);  // where the fragment's own text starts after a header
  size_t first_peak_frag = frags.size();
  for (size_t f = 0; f < frags.size(); ++f) {
    cands[f] = find_candidates(frags[f].flat);
    // A header inside the fragment ("13C NMR (..) δ 167") is not part of what must be harmless.
    size_t first = cands[f].empty() ? frags[f].flat.size() : cands[f][0].begin;
    std::string_view pre = std::string_view(frags[f].flat).substr(0, first);
    std::string low = lowercase(pre);
    size_t hdr = std::max({low.rfind("nmr") == std::string::npos ? 0 : low.rfind("nmr") + 3,
                           pre.rfind(kDeltaMark) == std::string_view::npos ? 0 : pre.rfind(kDeltaMark) + 1,
                           pre.rfind(':') == std::string_view::npos ? 0 : pre.rfind(':') + 1});
    body_from[f] = hdr;
    clean[f] = only_harmless_words(frags[f].flat, hdr, cands[f]);
    bool any = false;
    for (const Candidate& c : cands[f]) any = any || c.decimal || clean[f];
    if (any && first_peak_frag == frags.size()) first_peak_frag = f;
  }

  // Header: fragments before the first peak, plus the part of the first peak's fragment before its number.
  bool have_solvent = false;
  std::string header_text;
  size_t header_end = std::min(first_peak_frag + 1, frags.size());
  for (size_t f = 0; f < header_end; ++f) {
    const Fragment& fr = frags[f];
    size_t first = (f == first_peak_frag && !cands[f].empty()) ? cands[f][0].begin : fr.flat.size();
    std::string_view pre = std::string_view(fr.flat).substr(0, first);
    if (!out.nucleus) out.nucleus = nucleus_in(pre);
    header_text.append(pre);
    header_text += ", ";
    for (const Group& g : fr.groups)
      if (g.pos < first) {
        if (!out.nucleus) out.nucleus = nucleus_in(g.text);
        read_header(g.text, out, have_solvent);
      }
  }
  read_header(header_text, out, have_solvent);
  if (!out.nucleus && first_peak_frag == frags.size()) out.nucleus = nucleus_in(t);
  // Peaks are read for one nucleus; "δH ..."/"δC ..." switch the context in prose describing both.
  std::optional<Nucleus> context = out.nucleus;
  if (expected) {
    if (out.nucleus && *out.nucleus != *expected)
      warn(std::string("text names ") + nucleus_name(*out.nucleus) + ", expected " + nucleus_name(*expected));
    out.nucleus = expected;
  }

  // Pass 2: peaks and their annotations.
  bool last_peak_in_previous = false;  // the last peak came from the fragment just before (orphans attach)
  for (size_t f = first_peak_frag; f < frags.size(); ++f) {
    const Fragment& fr = frags[f];
    const std::vector<Candidate>& cs = cands[f];
    size_t first = cs.empty() ? fr.flat.size() : cs[0].begin;
    std::string_view pre = std::string_view(fr.flat).substr(0, first);
    if (f > first_peak_frag) {  // a new section ends the peak list
      bool new_section = contains_word_ci(pre, "nmr");
      for (std::string_view w : {"HRMS", "HR-MS", "HRESIMS", "HREIMS", "LRMS", "MS", "ESI", "ESIMS", "EI", "IR", "FTIR",
                                 "FT-IR", "UV", "Anal", "Elemental", "mp", "Mp", "Rf", "HPLC", "calcd", "Calcd", "MALDI",
                                 "GC-MS", "LC-MS"})
        new_section = new_section || contains_word(pre, w);
      new_section = new_section || pre.find("m/z") != std::string_view::npos;
      if (new_section) {
        std::string rest;
        for (size_t g = f; g < frags.size() && rest.size() < 80; ++g) rest += frags[g].raw + ",";
        warn("peak list ends at '" + printable(rest) + "'");
        break;
      }
    }
    // "13C NMR (CDCl3) δH (ppm): 13.77" (a typo): a header naming the nucleus beats a δ marker beside it.
    bool header_here = f == first_peak_frag && contains_word_ci(pre, "nmr") && nucleus_in(pre);
    if (std::optional<Nucleus> marked = delta_context(pre); marked && !header_here) context = marked;
    bool wanted = !context || !out.nucleus || *context == *out.nucleus;
    size_t made_before = out.peaks.size();
    std::vector<size_t> peak_of_cand(cs.size(), SIZE_MAX);
    for (size_t k = 0; k < cs.size(); ++k) {
      const Candidate& c = cs[k];
      if (!wanted || (!c.decimal && !clean[f])) continue;
      Peak p;
      p.shift = c.lo;
      if (c.range) {
        p.shift_hi = c.hi;
        if (c.hi - c.lo > 2.0)
          warn("suspicious range " + printable(std::string_view(fr.flat).substr(c.begin, c.end - c.begin)));
      }
      peak_of_cand[k] = out.peaks.size();
      out.peaks.push_back(std::move(p));
    }
    if (out.peaks.size() > made_before) {
      bool header_groups = f == first_peak_frag || body_from[f] > 0;
      size_t first_peak_cand = 0;
      while (first_peak_cand < cs.size() && peak_of_cand[first_peak_cand] == SIZE_MAX) ++first_peak_cand;
      // A group belongs to the last accepted number before it, else to the first one (leading annotations,
      // "H2 (1H, m) 2.5") unless it is part of a header. Groups and numbers are both in text order.
      size_t k = 0, own = SIZE_MAX;
      for (const Group& g : fr.groups) {
        for (; k < cs.size() && cs[k].begin <= g.pos; ++k)
          if (peak_of_cand[k] != SIZE_MAX) own = peak_of_cand[k];
        size_t target = own;
        if (target == SIZE_MAX) {
          if (header_groups) continue;
          target = peak_of_cand[first_peak_cand];
        }
        for (std::string_view item : group_items(g.text)) annotate(&out.peaks[target], item, out.nucleus);
      }
      // Bare words after each number: "0.92 t", "4.37 br. s", "2.32-2.46 m".
      for (size_t j = 0; j < cs.size(); ++j) {
        if (peak_of_cand[j] == SIZE_MAX) continue;
        size_t stop = j + 1 < cs.size() ? cs[j + 1].begin : fr.flat.size();
        std::string_view tail = std::string_view(fr.flat).substr(cs[j].end, stop - cs[j].end);
        Peak& p = out.peaks[peak_of_cand[j]];
        if (annotate(&p, tail, out.nucleus) == Annotation::Label) {
          size_t a = 0;
          while (a < tail.size()) {
            while (a < tail.size() && tail[a] == ' ') ++a;
            size_t b = a;
            while (b < tail.size() && tail[b] != ' ') ++b;
            if (b > a) annotate(&p, tail.substr(a, b - a), out.nucleus);
            a = b;
          }
        }
      }
      last_peak_in_previous = true;
      continue;
    }
    if (!wanted && !cs.empty()) {  // shifts of the other nucleus: skipped on purpose
      last_peak_in_previous = false;
      continue;
    }
    // No peak here: an orphan annotation of the previous peak ("8.16, 1H, s"), a coupling, or unparsed text.
    std::string_view body = trim_view(fr.flat);
    Annotation kind = annotate(nullptr, body, out.nucleus);
    bool annotation_only = kind != Annotation::Label;
    for (const Group& g : fr.groups)
      for (std::string_view item : group_items(g.text)) {
        Annotation gk = annotate(nullptr, item, out.nucleus);
        if (gk == Annotation::Label) annotation_only = false;
      }
    if (annotation_only) {
      if (last_peak_in_previous && !out.peaks.empty() && kind != Annotation::Empty) {
        annotate(&out.peaks.back(), body, out.nucleus);
        for (const Group& g : fr.groups)
          for (std::string_view item : group_items(g.text)) annotate(&out.peaks.back(), item, out.nucleus);
      }
      continue;  // keeps last_peak_in_previous: "8.16, 1H, s" attaches both
    }
    warn("unparsed fragment '" + printable(fr.raw) + "'");
    last_peak_in_previous = false;
  }
  if (out.peaks.empty()) warn("no peaks found");
  return out;
}

}  // namespace larmor::chem
