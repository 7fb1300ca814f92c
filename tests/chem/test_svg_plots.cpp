// SVG figures (chem/svg_plots): every figure is parsed by a small XML checker written here (balanced tags,
// quoted attributes, only the five named entities or character references, one <svg> root with the SVG
// namespace and a viewBox), and the marks are checked against the data: one circle per distinct point,
// points with reference == predicted on the drawn diagonal (equal x and y ranges), legend MAE/RMSE equal to
// an independent computation, histogram bars whose counts sum to n and match a recount of their own bin
// ranges, one spectrum stick per peak with ppm decreasing to the right, heights proportional to atom counts,
// and close labels moved apart. Titles with "<&>" must come back unchanged through escaping.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "chem/svg_plots.h"
#include "engine/error.h"

using namespace larmor;
using namespace larmor::chem;

namespace {

// ---- a tiny XML reader: enough to prove well-formedness of what svg_plots writes ----
struct Node {
  std::string name;
  std::map<std::string, std::string> attrs;  // unescaped
  std::string text;                          // direct character data, unescaped
  std::vector<Node> children;
};

struct XmlParser {
  const std::string& s;
  size_t i = 0;
  std::string error;

  bool fail(const std::string& what) {
    if (error.empty()) error = what + " at offset " + std::to_string(i);
    return false;
  }
  // Unescapes s[from, to); false on a bare '&' or an unknown entity, or a '<' in character data.
  bool unescape(size_t from, size_t to, std::string& out) {
    for (size_t k = from; k < to; ++k) {
      const char c = s[k];
      if (c == '<') return fail("'<' in character data or attribute");
      if (c != '&') {
        out += c;
        continue;
      }
      const size_t semi = s.find(';', k);
      if (semi == std::string::npos || semi >= to) return fail("bare '&'");
      const std::string ent = s.substr(k + 1, semi - k - 1);
      static const std::map<std::string, char> named{{"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
      if (auto it = named.find(ent); it != named.end()) {
        out += it->second;
      } else if (ent.size() > 1 && ent[0] == '#' &&
                 ent.find_first_not_of("0123456789", 1) == std::string::npos) {
        out += '?';  // numeric reference; value not needed here
      } else {
        return fail("unknown entity &" + ent + ";");
      }
      k = semi;
    }
    return true;
  }
  static bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ':' || c == '.'; }
  std::string read_name() {
    const size_t b = i;
    while (i < s.size() && name_char(s[i])) ++i;
    return s.substr(b, i - b);
  }
  void skip_ws() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  }
  // Parses one element starting at '<'.
  bool element(Node& node) {
    ++i;  // '<'
    node.name = read_name();
    if (node.name.empty()) return fail("empty element name");
    for (;;) {
      skip_ws();
      if (i >= s.size()) return fail("unterminated start tag <" + node.name);
      if (s.compare(i, 2, "/>") == 0) {
        i += 2;
        return true;
      }
      if (s[i] == '>') {
        ++i;
        break;
      }
      const std::string an = read_name();
      if (an.empty()) return fail("bad attribute in <" + node.name);
      skip_ws();
      if (i >= s.size() || s[i] != '=') return fail("attribute " + an + " without '='");
      ++i;
      skip_ws();
      if (i >= s.size() || (s[i] != '"' && s[i] != '\'')) return fail("unquoted attribute " + an);
      const char q = s[i++];
      const size_t end = s.find(q, i);
      if (end == std::string::npos) return fail("unterminated attribute " + an);
      std::string v;
      if (!unescape(i, end, v)) return false;
      if (!node.attrs.emplace(an, v).second) return fail("duplicate attribute " + an);
      i = end + 1;
    }
    // content
    for (;;) {
      const size_t lt = s.find('<', i);
      if (lt == std::string::npos) return fail("unclosed <" + node.name + ">");
      if (!unescape(i, lt, node.text)) return false;
      i = lt;
      if (s.compare(i, 4, "<!--") == 0) {
        const size_t e = s.find("-->", i);
        if (e == std::string::npos) return fail("unterminated comment");
        i = e + 3;
      } else if (s.compare(i, 2, "</") == 0) {
        i += 2;
        const std::string close = read_name();
        skip_ws();
        if (close != node.name) return fail("</" + close + "> closes <" + node.name + ">");
        if (i >= s.size() || s[i] != '>') return fail("bad end tag");
        ++i;
        return true;
      } else {
        node.children.emplace_back();
        if (!element(node.children.back())) return false;
      }
    }
  }
};

// Parses a whole document: optional XML declaration, exactly one root element, nothing but space after.
Node parse_svg(const std::string& doc) {
  XmlParser p{doc};
  if (doc.compare(0, 5, "<?xml") == 0) {
    const size_t e = doc.find("?>");
    REQUIRE(e != std::string::npos);
    p.i = e + 2;
  }
  p.skip_ws();
  REQUIRE(p.i < doc.size());
  REQUIRE(doc[p.i] == '<');
  Node root;
  const bool ok = p.element(root);
  INFO(p.error);
  REQUIRE(ok);
  p.skip_ws();
  CHECK(p.i == doc.size());  // a single root
  CHECK(root.name == "svg");
  CHECK(root.attrs["xmlns"] == "http://www.w3.org/2000/svg");
  CHECK(root.attrs.count("viewBox") == 1);
  return root;
}

void collect(const Node& n, const std::string& name, std::vector<const Node*>& out) {
  if (n.name == name) out.push_back(&n);
  for (const Node& c : n.children) collect(c, name, out);
}
std::vector<const Node*> all(const Node& root, const std::string& name) {
  std::vector<const Node*> v;
  collect(root, name, v);
  return v;
}
std::vector<const Node*> with_class(const Node& root, const std::string& name, const std::string& cls) {
  std::vector<const Node*> v;
  for (const Node* n : all(root, name))
    if (n->attrs.count("class") && n->attrs.at("class") == cls) v.push_back(n);
  return v;
}
double attr(const Node* n, const std::string& a) { return std::stod(n->attrs.at(a)); }
std::string title_of(const Node* n) {
  for (const Node& c : n->children)
    if (c.name == "title") return c.text;
  return "";
}
// The number after `key` in the first <text> that contains it.
double number_after(const Node& root, const std::string& key) {
  for (const Node* t : all(root, "text")) {
    const size_t k = t->text.find(key);
    if (k != std::string::npos) return std::stod(t->text.substr(k + key.size()));
  }
  FAIL("no text with '" << key << "'");
  return 0;
}
bool has_text(const Node& root, const std::string& s) {
  for (const Node* t : all(root, "text"))
    if (t->text == s) return true;
  return false;
}

// Deterministic pseudo-random numbers (no std distributions: their output differs between libraries).
struct Lcg {
  uint64_t x;
  double uniform() {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<double>(x >> 11) / 9007199254740992.0;
  }
  double normal() {  // Box-Muller
    const double u = std::max(uniform(), 1e-12), v = uniform();
    return std::sqrt(-2 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
};

// Labels of a stick spectrum: one per labelled stick, ordered like their sticks (left to right), not
// overlapping (horizontal: estimated widths at 0.55 em per character, below the layout's 0.64; rotated:
// one line height apart), and each joined by a leader polyline that ends on its stick's x.
void check_labels_apart(const Node& root, const std::vector<SpectrumStick>& sticks) {
  const std::vector<const Node*> lines = with_class(root, "line", "stick");
  const std::vector<const Node*> labels = with_class(root, "text", "label");
  REQUIRE(lines.size() == sticks.size());
  REQUIRE(labels.size() == sticks.size());
  std::map<std::string, size_t> index;  // label text -> stick
  for (size_t i = 0; i < sticks.size(); ++i) index[sticks[i].label] = i;
  std::vector<std::pair<double, size_t>> by_x;  // (label x, stick)
  for (const Node* t : labels) {
    REQUIRE(index.count(t->text) == 1);
    by_x.emplace_back(attr(t, "x"), index[t->text]);
  }
  std::sort(by_x.begin(), by_x.end());
  for (size_t k = 1; k < by_x.size(); ++k) {
    const size_t a = by_x[k - 1].second, b = by_x[k].second;
    CHECK(attr(lines[a], "x1") <= attr(lines[b], "x1"));  // same order as the sticks
    const Node* t = labels[0];
    const double font = attr(t, "font-size");
    const double need = t->attrs.count("transform")
                            ? font
                            : 0.55 * font * static_cast<double>(sticks[a].label.size() + sticks[b].label.size()) / 2;
    CHECK(by_x[k].first - by_x[k - 1].first >= need);
  }
  std::multiset<std::string> leader_ends, stick_xs;
  for (const Node* l : lines) stick_xs.insert(l->attrs.at("x1"));
  for (const Node* pl : all(root, "polyline")) {
    const std::string pts = pl->attrs.at("points");
    const size_t last = pts.rfind(' ');
    leader_ends.insert(pts.substr(last + 1, pts.rfind(',') - last - 1));
  }
  CHECK(leader_ends == stick_xs);
}

}  // namespace

TEST_CASE("svg: xml_escape, nice steps and ticks") {
  CHECK(xml_escape("a<b>&\"c'") == "a&lt;b&gt;&amp;&quot;c&apos;");
  CHECK(nice_step(1.0) == doctest::Approx(1.0));
  CHECK(nice_step(1.1) == doctest::Approx(2.0));
  CHECK(nice_step(0.3) == doctest::Approx(0.5));
  CHECK(nice_step(7.0) == doctest::Approx(10.0));
  CHECK(nice_step(0.0021) == doctest::Approx(0.005));
  CHECK(nice_step(18.3) == doctest::Approx(20.0));
  CHECK_THROWS_AS(nice_step(0.0), Error);
  const std::vector<double> t = nice_ticks(0, 220, 12);
  REQUIRE(t.size() == 12);
  for (size_t k = 0; k < t.size(); ++k) CHECK(t[k] == doctest::Approx(20.0 * static_cast<double>(k)));
  const std::vector<double> u = nice_ticks(-1.3, 2.1, 8);  // 3.4 / 8 = 0.425 -> step 0.5
  REQUIRE(u.size() == 7);
  CHECK(u.front() == doctest::Approx(-1.0));
  CHECK(u.back() == doctest::Approx(2.0));
  CHECK(nice_ticks(3, 3, 5).empty());
}

TEST_CASE("svg: parity plot") {
  // 10 distinct points, three of them repeated exactly, and two on the diagonal
  std::vector<std::pair<double, double>> pairs{{10, 12}, {20, 19}, {35, 36.5}, {50, 50},  {80, 71},
                                               {95, 101}, {120, 118}, {130, 130}, {150, 149}, {170, 178}};
  pairs.push_back(pairs[1]);
  pairs.push_back(pairs[4]);
  pairs.push_back(pairs[1]);
  const std::string doc = parity_plot_svg(pairs, "Parity <&> \"test\"", "13C");
  const Node root = parse_svg(doc);
  CHECK(doc.find("Parity &lt;&amp;&gt; &quot;test&quot;") != std::string::npos);
  CHECK(has_text(root, "Parity <&> \"test\""));

  const std::vector<const Node*> circles = all(root, "circle");
  CHECK(circles.size() == 10);

  // legend against an independent computation
  double abs_sum = 0, sq_sum = 0;
  for (const auto& [r, p] : pairs) {
    abs_sum += std::abs(p - r);
    sq_sum += (p - r) * (p - r);
  }
  const double n = static_cast<double>(pairs.size());
  CHECK(number_after(root, "n = ") == doctest::Approx(13));
  CHECK(number_after(root, "MAE = ") == doctest::Approx(abs_sum / n).epsilon(1e-3));
  CHECK(number_after(root, "RMSE = ") == doctest::Approx(std::sqrt(sq_sum / n)).epsilon(1e-3));

  // equal x and y ranges: points with reference == predicted lie on the diagonal x + y = const, and the
  // drawn diagonal (the dashed red line) has slope -1 in pixels
  std::vector<double> on_diag;
  for (const Node* c : circles) on_diag.push_back(attr(c, "cx") + attr(c, "cy"));
  // the circles of (50, 50) and (130, 130) are the 4th and 8th distinct points in input order
  CHECK(on_diag[3] == doctest::Approx(on_diag[7]).epsilon(1e-3));
  bool diagonal = false;
  for (const Node* l : all(root, "line"))
    if (l->attrs.count("stroke") && l->attrs.at("stroke") == "#d62728" && attr(l, "x2") - attr(l, "x1") > 100) {
      diagonal = true;
      CHECK(attr(l, "x2") - attr(l, "x1") == doctest::Approx(attr(l, "y1") - attr(l, "y2")).epsilon(1e-3));
      CHECK(attr(l, "x1") + attr(l, "y1") == doctest::Approx(on_diag[3]).epsilon(1e-3));
    }
  CHECK(diagonal);
  // higher reference -> further right, higher prediction -> further up
  CHECK(attr(circles[9], "cx") > attr(circles[0], "cx"));
  CHECK(attr(circles[9], "cy") < attr(circles[0], "cy"));

  CHECK_THROWS_AS(parity_plot_svg({}, "empty", "1H"), Error);
  CHECK_THROWS_AS(parity_plot_svg({{1, std::nan("")}}, "nan", "1H"), Error);
}

TEST_CASE("svg: parity plot of many points stays small") {
  Lcg rng{42};
  std::vector<std::pair<double, double>> pairs;
  for (int i = 0; i < 40000; ++i) {
    const double ref = std::round(rng.uniform() * 2000) / 10;  // 0.1 ppm resolution: many repeats
    pairs.emplace_back(ref, ref + std::round(rng.normal() * 20) / 10);
  }
  std::set<std::pair<double, double>> distinct(pairs.begin(), pairs.end());
  const std::string doc = parity_plot_svg(pairs, "many", "13C");
  const Node root = parse_svg(doc);
  const size_t circles = all(root, "circle").size();
  CHECK(circles <= distinct.size());
  CHECK(circles > 1000);
  CHECK(doc.size() < 60 * circles + 20000);
  CHECK(number_after(root, "n = ") == doctest::Approx(40000));
}

TEST_CASE("svg: error histogram") {
  Lcg rng{7};
  std::vector<double> errors;
  for (int i = 0; i < 3000; ++i) errors.push_back(0.1 + 1.5 * rng.normal());
  for (double o : {40.0, -55.0, 80.0}) errors.push_back(o);  // far outliers
  const std::string doc = error_histogram_svg(errors, "Errors <13C> & co", "ppm");
  const Node root = parse_svg(doc);
  CHECK(has_text(root, "Errors <13C> & co"));

  const std::vector<const Node*> bars = with_class(root, "rect", "bar");
  REQUIRE(bars.size() > 5);
  // each bar's tooltip is "[a, b) ppm: count ..."; recount the errors of [a, b) (edge bars also take what
  // lies beyond them)
  struct Bar {
    double a, b;
    int64_t count;
  };
  std::vector<Bar> parsed;
  for (const Node* r : bars) {
    const std::string t = title_of(r);
    REQUIRE(t.size() > 3);
    REQUIRE(t[0] == '[');
    const size_t comma = t.find(", "), close = t.find(')'), colon = t.find(": ");
    REQUIRE(colon != std::string::npos);
    parsed.push_back({std::stod(t.substr(1, comma - 1)), std::stod(t.substr(comma + 2, close - comma - 2)),
                      std::stoll(t.substr(colon + 2))});
  }
  int64_t sum = 0;
  double lo = parsed[0].a, hi = parsed[0].b;
  for (const Bar& b : parsed) {
    sum += b.count;
    lo = std::min(lo, b.a);
    hi = std::max(hi, b.b);
  }
  CHECK(sum == static_cast<int64_t>(errors.size()));
  CHECK(lo == doctest::Approx(-hi));  // symmetric
  CHECK(hi < 40);                     // clipped: the outliers did not stretch the range
  for (const Bar& b : parsed) {
    int64_t c = 0;
    for (double e : errors)
      if ((e >= b.a && e < b.b) || (b.a == lo && e < lo) || (b.b == hi && e >= hi)) ++c;
    CHECK(c == b.count);
  }
  // bar heights are proportional to counts
  const Bar* tallest = &parsed[0];
  size_t tallest_i = 0;
  for (size_t k = 0; k < parsed.size(); ++k)
    if (parsed[k].count > tallest->count) tallest = &parsed[k], tallest_i = k;
  for (size_t k = 0; k < parsed.size(); ++k)
    CHECK(attr(bars[k], "height") / attr(bars[tallest_i], "height") ==
          doctest::Approx(static_cast<double>(parsed[k].count) / static_cast<double>(tallest->count)).epsilon(0.02));

  double abs_sum = 0, sq_sum = 0, mean = 0;
  for (double e : errors) {
    abs_sum += std::abs(e);
    sq_sum += e * e;
    mean += e;
  }
  const double n = static_cast<double>(errors.size());
  CHECK(number_after(root, "MAE = ") == doctest::Approx(abs_sum / n).epsilon(1e-3));
  CHECK(number_after(root, "RMSE = ") == doctest::Approx(std::sqrt(sq_sum / n)).epsilon(1e-3));
  CHECK(number_after(root, "mean = ") == doctest::Approx(mean / n).epsilon(2e-3));
  bool note = false;
  for (const Node* t : all(root, "text")) note = note || t->text.find("counted in the edge bins") != std::string::npos;
  CHECK(note);

  SUBCASE("a single value and all-zero errors") {
    for (const std::vector<double>& e : {std::vector<double>{0.7}, std::vector<double>(5, 0.0)}) {
      const Node r = parse_svg(error_histogram_svg(e, "t", "ppm"));
      int64_t s = 0;
      for (const Node* b : with_class(r, "rect", "bar")) s += std::stoll(title_of(b).substr(title_of(b).find(": ") + 2));
      CHECK(s == static_cast<int64_t>(e.size()));
    }
  }
  CHECK_THROWS_AS(error_histogram_svg({}, "t", "ppm"), Error);
  CHECK_THROWS_AS(error_histogram_svg({1.0, INFINITY}, "t", "ppm"), Error);
}

TEST_CASE("svg: stick spectrum") {
  const std::vector<SpectrumStick> sticks{
      {21.0, 1, "C0"}, {128.5, 2, "C2,C6"}, {129.0, 1, "C3"}, {170.2, 1, "C7 <x&y>"}, {14.2, 3, "C9"}};
  const std::string doc = stick_spectrum_svg(sticks, "13C", "aspirin & co");
  const Node root = parse_svg(doc);
  CHECK(has_text(root, "aspirin & co"));
  const std::vector<const Node*> lines = with_class(root, "line", "stick");
  REQUIRE(lines.size() == sticks.size());
  // ppm decreases to the right
  CHECK(attr(lines[3], "x1") < attr(lines[1], "x1"));  // 170.2 left of 128.5
  CHECK(attr(lines[1], "x1") > attr(lines[2], "x1"));  // 128.5 right of 129.0
  CHECK(attr(lines[0], "x1") > attr(lines[2], "x1"));
  // heights proportional to atoms (y1 = baseline, y2 = top)
  const double h0 = attr(lines[0], "y1") - attr(lines[0], "y2");
  CHECK(attr(lines[1], "y1") - attr(lines[1], "y2") == doctest::Approx(2 * h0).epsilon(0.01));
  CHECK(attr(lines[4], "y1") - attr(lines[4], "y2") == doctest::Approx(3 * h0).epsilon(0.01));
  for (const Node* l : lines) CHECK(attr(l, "x1") == attr(l, "x2"));
  // labels (escaped) and their tooltips
  const std::vector<const Node*> labels = with_class(root, "text", "label");
  REQUIRE(labels.size() == sticks.size());
  std::map<std::string, const Node*> by_text;
  for (const Node* t : labels) by_text[t->text] = t;
  for (const SpectrumStick& s : sticks) CHECK(by_text.count(s.label) == 1);
  CHECK(title_of(lines[3]) == "C7 <x&y>: 170.2 ppm");
  // the two close sticks (0.5 ppm apart, about 2 px) get labels that do not overlap, in the sticks' order
  check_labels_apart(root, sticks);
  // default 13C window 0..220: both ends are tick labels, 220 on the left
  double x0 = -1, x220 = -1;
  for (const Node* t : all(root, "text")) {
    if (t->text == "0") x0 = attr(t, "x");
    if (t->text == "220") x220 = attr(t, "x");
  }
  REQUIRE(x0 > 0);
  REQUIRE(x220 > 0);
  CHECK(x220 < x0);
  CHECK(attr(lines[3], "x1") > x220);
  CHECK(attr(lines[3], "x1") < x0);

  SUBCASE("data outside the default window widens it") {
    const Node r = parse_svg(stick_spectrum_svg({{13.5, 1, "H1"}, {-0.8, 3, "H2"}}, "1H", "wide"));
    const std::vector<const Node*> l = with_class(r, "line", "stick");
    REQUIRE(l.size() == 2);
    std::vector<double> vb;
    {
      const std::string v = r.attrs.at("viewBox");
      size_t pos = 0;
      for (int k = 0; k < 4; ++k) {
        size_t used = 0;
        vb.push_back(std::stod(v.substr(pos), &used));
        pos += used;
      }
    }
    for (const Node* s : l) {
      CHECK(attr(s, "x1") > 0);
      CHECK(attr(s, "x1") < vb[2]);
    }
    CHECK(attr(l[0], "x1") < attr(l[1], "x1"));
  }
  SUBCASE("crowded labels are spread apart in order, rotated when they do not fit side by side") {
    std::vector<SpectrumStick> crowd;
    for (int k = 0; k < 12; ++k) crowd.push_back({128.0 + 0.3 * k, 1, std::string(1, 'C') += std::to_string(10 + k)});
    check_labels_apart(parse_svg(stick_spectrum_svg(crowd, "13C", "crowd")), crowd);
    std::vector<SpectrumStick> many;  // 60 labels of 8 characters cannot stand side by side in 860 px
    for (int k = 0; k < 60; ++k) {
      std::string label = "C";  // "C7 (2H)"; appended piece by piece (gcc 12's false -Wrestrict on "C" + ...)
      label += std::to_string(k);
      label += " (";
      label += std::to_string(1 + k % 3);
      label += "H)";
      many.push_back({0.5 + 0.05 * k, static_cast<double>(1 + k % 3), label});
    }
    const Node r = parse_svg(stick_spectrum_svg(many, "1H", "many"));
    check_labels_apart(r, many);
    for (const Node* t : with_class(r, "text", "label")) CHECK(t->attrs.count("transform") == 1);
  }
  SUBCASE("no sticks") {
    const Node r = parse_svg(stick_spectrum_svg({}, "1H", "nothing"));
    CHECK(with_class(r, "line", "stick").empty());
    CHECK(has_text(r, "no peaks"));
  }
  CHECK_THROWS_AS(stick_spectrum_svg({{NAN, 1, "x"}}, "13C", "t"), Error);
  CHECK_THROWS_AS(stick_spectrum_svg({{10, 0, "x"}}, "13C", "t"), Error);
}
