// SVG parity plot, error histogram and stick spectrum (see svg_plots.h for why they are built this way).
// Each figure is laid out in pixels of its own viewBox: a frame for the data, a linear map from data to
// pixels, nice ticks, then the marks. Text sizes assume a sans-serif font of about 0.64 em per character
// when estimating label widths (DejaVu Sans digits are 0.636 em).
#include "chem/svg_plots.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <unordered_set>

#include "engine/error.h"

namespace larmor::chem {

namespace {

constexpr const char* kFont = "DejaVu Sans, Arial, Helvetica, sans-serif";
constexpr double kCharWidth = 0.64;  // average glyph advance, in em, for label width estimates

// Fixed-point text of v; "-0.0" is written "0.0".
std::string fixed(double v, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  std::string s = buf;
  if (s[0] == '-' && s.find_first_not_of("-0.") == std::string::npos) s.erase(0, 1);
  return s;
}
std::string px(double v) { return fixed(v, 1); }

// Decimals that show every multiple of a nice step exactly (step 0.5 -> 1, 2 -> 0, 0.02 -> 2).
int step_decimals(double step) { return std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9))); }

// "13C" -> "¹³C": the mass number as Unicode superscript digits, as chemists write nuclei.
std::string nucleus_display(const std::string& nucleus) {
  static const char* kSuper[10] = {"\u2070", "\u00B9", "\u00B2", "\u00B3", "\u2074",
                                   "\u2075", "\u2076", "\u2077", "\u2078", "\u2079"};
  size_t digits = 0;
  while (digits < nucleus.size() && nucleus[digits] >= '0' && nucleus[digits] <= '9') ++digits;
  if (digits == 0 || digits == nucleus.size()) return nucleus;
  std::string s;
  for (size_t i = 0; i < digits; ++i) s += kSuper[nucleus[i] - '0'];
  return s + nucleus.substr(digits);
}

size_t utf8_length(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// Minimal SVG writer: every text and attribute value goes through xml_escape.
class Svg {
 public:
  Svg(double width, double height) {
    out_ = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" +
           px(width) + "\" height=\"" + px(height) + "\" viewBox=\"0 0 " + px(width) + " " + px(height) +
           "\" font-family=\"" + xml_escape(kFont) + "\">\n";
    rect(0, 0, width, height, "fill=\"#ffffff\"");
  }
  void raw(const std::string& s) { out_ += s; }
  void rect(double x, double y, double w, double h, const std::string& attrs, const std::string& tooltip = "") {
    out_ += "<rect x=\"" + px(x) + "\" y=\"" + px(y) + "\" width=\"" + px(w) + "\" height=\"" + px(h) + "\" " + attrs;
    close(tooltip, "rect");
  }
  void line(double x1, double y1, double x2, double y2, const std::string& attrs, const std::string& tooltip = "") {
    out_ += "<line x1=\"" + px(x1) + "\" y1=\"" + px(y1) + "\" x2=\"" + px(x2) + "\" y2=\"" + px(y2) + "\" " + attrs;
    close(tooltip, "line");
  }
  // anchor: start | middle | end
  void text(double x, double y, const std::string& s, double size, const char* anchor, const std::string& attrs = "") {
    out_ += "<text x=\"" + px(x) + "\" y=\"" + px(y) + "\" font-size=\"" + px(size) + "\" text-anchor=\"" + anchor +
            "\"" + (attrs.empty() ? "" : " " + attrs) + ">" + xml_escape(s) + "</text>\n";
  }
  // A bold title centred at (x, y), shrunk from 16 px when its estimated width would not fit `room`.
  void title(double x, double y, const std::string& s, double room) {
    const double chars = static_cast<double>(utf8_length(s));
    const double size = std::clamp(room / std::max(1.0, chars * 0.62), 9.0, 16.0);
    text(x, y, s, size, "middle", "font-weight=\"bold\"");
  }
  std::string finish() { return out_ + "</svg>\n"; }

 private:
  void close(const std::string& tooltip, const char* tag) {
    if (tooltip.empty()) {
      out_ += "/>\n";
    } else {
      out_ += "><title>" + xml_escape(tooltip) + "</title></" + tag + ">\n";
    }
  }
  std::string out_;
};

void require_finite(double v, const char* who, const char* what, size_t index) {
  if (!std::isfinite(v))
    throw Error(std::string(who) + ": " + what + " " + std::to_string(index) + " is not finite (" + fixed(v, 3) + ")");
}

struct Moments {
  double mean = 0, mae = 0, rmse = 0;
};
Moments moments(const std::vector<double>& e) {
  Moments m;
  for (double v : e) {
    m.mean += v;
    m.mae += std::abs(v);
    m.rmse += v * v;
  }
  const double n = static_cast<double>(e.size());
  m.mean /= n;
  m.mae /= n;
  m.rmse = std::sqrt(m.rmse / n);
  return m;
}

// Centres for labels of the given widths on [left, right], in order, not overlapping (`gap` between), as
// close as possible (least squares) to `desired`; empty when they do not fit. With o_k the cumulative
// minimum spacing, c_k = y_k + o_k turns the constraints into y non-decreasing, so the optimum is the
// isotonic regression of (desired_k - o_k) (pool adjacent violators), clamped to the band's ends.
std::vector<double> spread_labels(const std::vector<double>& width, const std::vector<double>& desired, double gap,
                                  double left, double right) {
  const size_t m = width.size();
  std::vector<double> center(m);
  if (m == 0) return center;
  std::vector<double> offset(m, 0.0);
  for (size_t k = 1; k < m; ++k) offset[k] = offset[k - 1] + (width[k - 1] + width[k]) / 2 + gap;
  const double lo = left + width[0] / 2, hi = right - width[m - 1] / 2 - offset[m - 1];
  if (lo > hi) return {};
  struct Block {
    double sum;
    size_t count;
    double mean() const { return sum / static_cast<double>(count); }
  };
  std::vector<Block> blocks;
  for (size_t k = 0; k < m; ++k) {
    blocks.push_back({desired[k] - offset[k], 1});
    while (blocks.size() > 1 && blocks[blocks.size() - 2].mean() > blocks.back().mean()) {
      blocks[blocks.size() - 2].sum += blocks.back().sum;
      blocks[blocks.size() - 2].count += blocks.back().count;
      blocks.pop_back();
    }
  }
  size_t k = 0;
  for (const Block& b : blocks)
    for (size_t j = 0; j < b.count; ++j, ++k) center[k] = std::clamp(b.mean(), lo, hi) + offset[k];
  return center;
}

double max_displacement(const std::vector<double>& center, const std::vector<double>& desired) {
  double d = 0;
  for (size_t k = 0; k < center.size(); ++k) d = std::max(d, std::abs(center[k] - desired[k]));
  return d;
}

// Peak labels on one band: horizontal when they fit side by side close to their sticks, else rotated to
// read upwards (each then needs only its line height; the font shrinks when even that is too wide), and
// when nothing fits, evenly spread (overlap is then unavoidable).
struct LabelLayout {
  bool vertical = false;
  double font = 11;
  std::vector<double> center;  // per label, in `desired` order
  double displacement = 0;     // the largest |centre - desired|, px
};

LabelLayout layout_labels(const std::vector<std::string>& labels, const std::vector<double>& desired, double left,
                          double right) {
  LabelLayout lay;
  const size_t m = labels.size();
  if (m == 0) return lay;
  const double kFont = 11, kNearEnough = 60;  // px: horizontal labels this close to their sticks are kept
  std::vector<double> width(m);
  for (size_t k = 0; k < m; ++k) width[k] = static_cast<double>(utf8_length(labels[k])) * kFont * kCharWidth;
  const std::vector<double> flat = spread_labels(width, desired, 4, left, right);
  const double room = right - left, vgap = 2;
  const double vfont = std::clamp((room - vgap * static_cast<double>(m - 1)) / (1.15 * static_cast<double>(m)), 6.0, kFont);
  const std::vector<double> upright =
      spread_labels(std::vector<double>(m, 1.15 * vfont), desired, vgap, left, right);
  const double flat_d = flat.empty() ? 1e300 : max_displacement(flat, desired);
  const double upright_d = upright.empty() ? 1e300 : max_displacement(upright, desired);
  if (!flat.empty() && (flat_d <= kNearEnough || flat_d <= upright_d)) {
    lay.center = flat;
    lay.displacement = flat_d;
  } else if (!upright.empty()) {
    lay.vertical = true;
    lay.font = vfont;
    lay.center = upright;
    lay.displacement = upright_d;
  } else {
    lay.vertical = true;
    lay.font = vfont;
    lay.center.resize(m);
    for (size_t k = 0; k < m; ++k) lay.center[k] = left + (static_cast<double>(k) + 0.5) * room / static_cast<double>(m);
    lay.displacement = max_displacement(lay.center, desired);
  }
  return lay;
}

}  // namespace

std::string xml_escape(const std::string& text) {
  std::string o;
  o.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default:
        // control characters other than tab/newline are not allowed in XML 1.0
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') o += ' ';
        else o += c;
    }
  }
  return o;
}

double nice_step(double raw) {
  if (!(raw > 0) || !std::isfinite(raw)) throw Error("nice_step: step must be positive and finite, got " + fixed(raw, 6));
  const double base = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / base;
  const double m = f <= 1 + 1e-9 ? 1 : f <= 2 + 1e-9 ? 2 : f <= 5 + 1e-9 ? 5 : 10;
  return m * base;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> ticks;
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return ticks;
  const double step = nice_step((hi - lo) / std::max(1, target));
  const int64_t first = static_cast<int64_t>(std::ceil(lo / step - 1e-9));
  const int64_t last = static_cast<int64_t>(std::floor(hi / step + 1e-9));
  for (int64_t k = first; k <= last; ++k) ticks.push_back(k == 0 ? 0.0 : static_cast<double>(k) * step);
  return ticks;
}

// ---- parity plot ----
std::string parity_plot_svg(const std::vector<std::pair<double, double>>& pairs, const std::string& title,
                            const std::string& nucleus) {
  const char* who = "parity_plot_svg";
  if (pairs.empty()) throw Error(std::string(who) + ": no (reference, predicted) pairs for '" + title + "'");
  double lo = pairs[0].first, hi = lo;
  std::vector<double> errors;
  errors.reserve(pairs.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    require_finite(pairs[i].first, who, "reference value", i);
    require_finite(pairs[i].second, who, "predicted value", i);
    lo = std::min({lo, pairs[i].first, pairs[i].second});
    hi = std::max({hi, pairs[i].first, pairs[i].second});
    errors.push_back(pairs[i].second - pairs[i].first);
  }
  double span = hi - lo;
  if (span <= 0) span = std::max(1.0, std::abs(lo) * 0.1);
  lo -= 0.04 * span;
  hi += 0.04 * span;
  const double range = hi - lo;

  const double L = 80, T = 56, S = 480;  // frame: left, top, side
  const double W = L + S + 28, H = T + S + 64;
  auto X = [&](double v) { return L + (v - lo) / range * S; };
  auto Y = [&](double v) { return T + S - (v - lo) / range * S; };

  Svg svg(W, H);
  svg.title(W / 2, 32, title, W - 16);
  const std::vector<double> ticks = nice_ticks(lo, hi, 6);
  const int dec = ticks.size() >= 2 ? step_decimals(ticks[1] - ticks[0]) : 1;
  svg.raw("<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n");
  for (double t : ticks) {
    svg.line(X(t), T, X(t), T + S, "");
    svg.line(L, Y(t), L + S, Y(t), "");
  }
  svg.raw("</g>\n<g stroke=\"#333333\" stroke-width=\"1\">\n");
  for (double t : ticks) {
    svg.line(X(t), T + S, X(t), T + S + 5, "");
    svg.line(L - 5, Y(t), L, Y(t), "");
  }
  svg.raw("</g>\n<g fill=\"#333333\">\n");
  for (double t : ticks) {
    svg.text(X(t), T + S + 20, fixed(t, dec), 12, "middle");
    svg.text(L - 9, Y(t) + 4, fixed(t, dec), 12, "end");
  }
  svg.raw("</g>\n");

  // points: rounded to 0.1 px, one circle per distinct rounded position
  const size_t n = pairs.size();
  const double opacity = std::clamp(30.0 / std::sqrt(static_cast<double>(n)), 0.12, 0.8);
  const double radius = n > 5000 ? 1.6 : n > 500 ? 2.2 : 3.0;
  svg.raw("<g fill=\"#1f77b4\" fill-opacity=\"" + fixed(opacity, 2) + "\" stroke=\"none\">\n");
  std::unordered_set<int64_t> seen;
  seen.reserve(n * 2);
  for (const auto& [ref, pred] : pairs) {
    const int64_t cx = std::llround(X(ref) * 10), cy = std::llround(Y(pred) * 10);
    if (!seen.insert(cx * 1000003 + cy).second) continue;
    svg.raw("<circle cx=\"" + fixed(cx / 10.0, 1) + "\" cy=\"" + fixed(cy / 10.0, 1) + "\" r=\"" + fixed(radius, 1) +
            "\"/>\n");
  }
  svg.raw("</g>\n");
  svg.line(X(lo), Y(lo), X(hi), Y(hi), "stroke=\"#d62728\" stroke-width=\"1.2\" stroke-dasharray=\"6 4\"");
  svg.rect(L, T, S, S, "fill=\"none\" stroke=\"#333333\" stroke-width=\"1\"");

  // legend
  const Moments m = moments(errors);
  svg.rect(L + 12, T + 12, 178, 70, "fill=\"#ffffff\" fill-opacity=\"0.9\" stroke=\"#999999\"");
  svg.text(L + 22, T + 32, "n = " + std::to_string(n), 13, "start");
  svg.text(L + 22, T + 52, "MAE = " + fixed(m.mae, 3) + " ppm", 13, "start");
  svg.text(L + 22, T + 72, "RMSE = " + fixed(m.rmse, 3) + " ppm", 13, "start");
  svg.line(L + S - 166, T + S - 14, L + S - 138, T + S - 14,
           "stroke=\"#d62728\" stroke-width=\"1.2\" stroke-dasharray=\"6 4\"");
  svg.text(L + S - 8, T + S - 10, "predicted = reference", 11, "end", "fill=\"#555555\"");

  const std::string nd = nucleus_display(nucleus);
  svg.text(L + S / 2, T + S + 46, "reference \u03B4(" + nd + ") / ppm", 14, "middle");
  svg.text(24, T + S / 2, "predicted \u03B4(" + nd + ") / ppm", 14, "middle",
           "transform=\"rotate(-90 24 " + px(T + S / 2) + ")\"");
  return svg.finish();
}

// ---- error histogram ----
std::string error_histogram_svg(const std::vector<double>& errors, const std::string& title, const std::string& unit) {
  const char* who = "error_histogram_svg";
  if (errors.empty()) throw Error(std::string(who) + ": no errors for '" + title + "'");
  for (size_t i = 0; i < errors.size(); ++i) require_finite(errors[i], who, "error", i);
  const size_t n = errors.size();

  // symmetric range: the 99.5th percentile of |error| (nearest rank), rounded out to whole bins
  std::vector<double> mag(n);
  for (size_t i = 0; i < n; ++i) mag[i] = std::abs(errors[i]);
  std::sort(mag.begin(), mag.end());
  const size_t rank = static_cast<size_t>(std::ceil(0.995 * static_cast<double>(n)));
  double clip = mag[std::min(n, std::max<size_t>(rank, 1)) - 1];
  if (clip <= 0) clip = mag.back() > 0 ? mag.back() : 1.0;
  // about 2 sqrt(n) bins (6..80), at the nice width nearest (in ratio) to the raw one
  const double target_bins = std::clamp(std::round(2.0 * std::sqrt(static_cast<double>(n))), 6.0, 80.0);
  const double raw_width = 2.0 * clip / target_bins;
  const double up = nice_step(raw_width), down = nice_step(up * 0.35);  // the nice step below `up`
  const double width = raw_width / down < up / raw_width ? down : up;
  const int64_t half = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(clip / width - 1e-9)));
  const double edge = static_cast<double>(half) * width;
  const int64_t bins = 2 * half;
  std::vector<int64_t> counts(static_cast<size_t>(bins), 0);
  int64_t below = 0, above = 0;
  for (double e : errors) {
    if (e < -edge) ++below;
    if (e > edge) ++above;
    const int64_t b = std::clamp<int64_t>(static_cast<int64_t>(std::floor((e + edge) / width)), 0, bins - 1);
    ++counts[static_cast<size_t>(b)];
  }
  const int64_t max_count = *std::max_element(counts.begin(), counts.end());

  const double L = 78, T = 74, PW = 540, PH = 300;
  const double W = L + PW + 26, H = T + PH + 84;
  auto X = [&](double v) { return L + (v + edge) / (2 * edge) * PW; };
  const double ymax = std::max<double>(1.0, static_cast<double>(max_count)) * 1.08;
  auto Y = [&](double c) { return T + PH - c / ymax * PH; };

  Svg svg(W, H);
  const Moments m = moments(errors);
  svg.title(W / 2, 30, title, W - 16);
  svg.text(W / 2, 54,
           // em spaces between the items: SVG collapses runs of ordinary spaces
           "n = " + std::to_string(n) + "\u2003\u2003mean = " + fixed(m.mean, 3) + " " + unit + "\u2003\u2003MAE = " +
               fixed(m.mae, 3) + " " + unit + "\u2003\u2003RMSE = " + fixed(m.rmse, 3) + " " + unit,
           13, "middle", "fill=\"#333333\"");

  // y grid and ticks (whole counts)
  const double ystep = std::max(1.0, nice_step(ymax / 5));
  svg.raw("<g stroke=\"#e6e6e6\" stroke-width=\"1\">\n");
  for (double c = ystep; c <= ymax; c += ystep) svg.line(L, Y(c), L + PW, Y(c), "");
  svg.raw("</g>\n<g fill=\"#333333\">\n");
  for (double c = 0; c <= ymax; c += ystep) svg.text(L - 9, Y(c) + 4, fixed(c, 0), 12, "end");
  svg.raw("</g>\n");

  // bars
  const double bar_px = PW / static_cast<double>(bins);
  const double gap = bar_px > 4 ? 1.0 : 0.0;
  const int dec = step_decimals(width);
  for (int64_t b = 0; b < bins; ++b) {
    const int64_t c = counts[static_cast<size_t>(b)];
    if (c == 0) continue;
    const double a = -edge + static_cast<double>(b) * width;
    const int64_t out = b == 0 ? below : b == bins - 1 ? above : 0;
    // built piece by piece: gcc 12 reports a false -Wrestrict on `"[" + std::string` chains here
    std::string tip = "[";
    tip += fixed(a, dec);
    tip += ", ";
    tip += fixed(a + width, dec);
    tip += ") ";
    tip += unit;
    tip += ": ";
    tip += std::to_string(c);
    if (out > 0) {
      tip += " (includes ";
      tip += std::to_string(out);
      tip += " beyond \u00B1";
      tip += fixed(edge, dec);
      tip += ")";
    }
    svg.rect(X(a) + gap / 2, Y(static_cast<double>(c)), bar_px - gap, Y(0) - Y(static_cast<double>(c)),
             std::string("class=\"bar\" fill=\"") + (out > 0 ? "#e45756" : "#4c78a8") + "\"", tip);
  }
  svg.line(X(0), T, X(0), T + PH, "stroke=\"#555555\" stroke-width=\"1\" stroke-dasharray=\"4 3\"");
  svg.rect(L, T, PW, PH, "fill=\"none\" stroke=\"#333333\" stroke-width=\"1\"");

  // x ticks
  const std::vector<double> ticks = nice_ticks(-edge, edge, 8);
  const int xdec = ticks.size() >= 2 ? step_decimals(ticks[1] - ticks[0]) : dec;
  svg.raw("<g stroke=\"#333333\" stroke-width=\"1\">\n");
  for (double t : ticks) svg.line(X(t), T + PH, X(t), T + PH + 5, "");
  svg.raw("</g>\n<g fill=\"#333333\">\n");
  for (double t : ticks) svg.text(X(t), T + PH + 20, fixed(t, xdec), 12, "middle");
  svg.raw("</g>\n");
  svg.text(L + PW / 2, T + PH + 46, "error (predicted \u2212 reference) / " + unit, 14, "middle");
  svg.text(22, T + PH / 2, "count", 14, "middle", "transform=\"rotate(-90 22 " + px(T + PH / 2) + ")\"");
  if (below + above > 0)
    svg.text(L + PW / 2, T + PH + 70,
             std::to_string(below + above) + " of " + std::to_string(n) + " beyond \u00B1" + fixed(edge, dec) + " " +
                 unit + " (99.5th percentile of |error|) counted in the edge bins (red)",
             11, "middle", "fill=\"#555555\"");
  return svg.finish();
}

// ---- stick spectrum ----
std::string stick_spectrum_svg(const std::vector<SpectrumStick>& sticks, const std::string& nucleus,
                               const std::string& title) {
  const char* who = "stick_spectrum_svg";
  double max_atoms = 0;
  for (size_t i = 0; i < sticks.size(); ++i) {
    require_finite(sticks[i].ppm, who, "stick", i);
    if (!(sticks[i].atoms > 0) || !std::isfinite(sticks[i].atoms))
      throw Error(std::string(who) + ": stick " + std::to_string(i) + " ('" + sticks[i].label +
                  "') has a non-positive atom count " + fixed(sticks[i].atoms, 3));
    max_atoms = std::max(max_atoms, sticks[i].atoms);
  }

  // window: the nucleus' usual range, widened to the data
  double lo = 0, hi = 0;
  bool have_default = true;
  if (nucleus == "13C") hi = 220;
  else if (nucleus == "1H") hi = 12;
  else have_default = false;
  if (!sticks.empty()) {
    double dmin = sticks[0].ppm, dmax = dmin;
    for (const SpectrumStick& s : sticks) {
      dmin = std::min(dmin, s.ppm);
      dmax = std::max(dmax, s.ppm);
    }
    const double pad = 0.03 * std::max(have_default ? hi - lo : dmax - dmin, 10.0);
    if (have_default) {
      lo = std::min(lo, dmin - pad);
      hi = std::max(hi, dmax + pad);
    } else {
      lo = dmin - pad;
      hi = dmax + pad;
    }
  } else if (!have_default) {
    hi = 100;
  }
  const double range = hi - lo;

  const double L = 40, PW = 780, W = L + PW + 40;
  auto X = [&](double ppm) { return L + (hi - ppm) / range * PW; };

  // labels, left to right, spread along one band without overlapping and in the sticks' order
  std::vector<size_t> order;
  for (size_t i = 0; i < sticks.size(); ++i)
    if (!sticks[i].label.empty()) order.push_back(i);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return X(sticks[a].ppm) < X(sticks[b].ppm); });
  std::vector<double> desired;
  std::vector<std::string> labels;
  size_t longest = 0;
  for (size_t i : order) {
    desired.push_back(X(sticks[i].ppm));
    labels.push_back(sticks[i].label);
    longest = std::max(longest, utf8_length(sticks[i].label));
  }
  const LabelLayout lay = layout_labels(labels, desired, 4, W - 4);
  const double band_top = 46;
  const double band_h = lay.vertical ? static_cast<double>(longest) * lay.font * kCharWidth + 2 : lay.font + 3;
  const double band_bottom = band_top + band_h;  // label baselines (horizontal) / text starts (vertical)
  const double knee_top = band_bottom + 4;       // leader: from the label straight down to here, then slanted
  // to the stick's x (steeper the further labels moved, so a fan of leaders stays apart), then down
  const double knee_bottom = knee_top + std::clamp(0.3 * lay.displacement, 16.0, 70.0);
  const double stick_top = knee_bottom + 6;          // the tallest stick reaches here
  const double stick_h = 220;
  const double base = stick_top + stick_h;
  const double H = base + 62;
  auto stick_y = [&](double atoms) { return base - atoms / max_atoms * stick_h; };

  Svg svg(W, H);
  svg.title(W / 2, 28, title, W - 16);

  // axis
  const std::vector<double> ticks = nice_ticks(lo, hi, 12);
  const int dec = ticks.size() >= 2 ? step_decimals(ticks[1] - ticks[0]) : 1;
  svg.line(L, base, L + PW, base, "stroke=\"#333333\" stroke-width=\"1\"");
  svg.raw("<g stroke=\"#333333\" stroke-width=\"1\">\n");
  for (double t : ticks) svg.line(X(t), base, X(t), base + 5, "");
  svg.raw("</g>\n<g fill=\"#333333\">\n");
  for (double t : ticks) svg.text(X(t), base + 19, fixed(t, dec), 12, "middle");
  svg.raw("</g>\n");
  svg.text(L + PW / 2, base + 44, "\u03B4(" + nucleus_display(nucleus) + ") / ppm", 14, "middle");
  svg.text(W - 8, base + 56, "stick height \u221D number of atoms", 10, "end", "fill=\"#777777\"");
  if (sticks.empty()) svg.text(L + PW / 2, base - stick_h / 2, "no peaks", 14, "middle", "fill=\"#777777\"");

  // leader lines, sticks, labels
  const int ppm_dec = nucleus == "1H" ? 2 : 1;
  svg.raw("<g fill=\"none\" stroke=\"#9a9a9a\" stroke-width=\"0.8\">\n");
  for (size_t k = 0; k < order.size(); ++k) {
    const double x = desired[k], c = lay.center[k], top = stick_y(sticks[order[k]].atoms) - 3;
    svg.raw("<polyline points=\"" + px(c) + "," + px(band_bottom + 2) + " " + px(c) + "," + px(knee_top) + " " + px(x) +
            "," + px(knee_bottom) + " " + px(x) + "," + px(std::max(top, knee_bottom)) + "\"/>\n");
  }
  svg.raw("</g>\n<g stroke=\"#1f3b73\" stroke-width=\"2\">\n");
  for (const SpectrumStick& s : sticks)
    svg.line(X(s.ppm), base, X(s.ppm), stick_y(s.atoms), "class=\"stick\"",
             (s.label.empty() ? std::string() : s.label + ": ") + fixed(s.ppm, ppm_dec) + " ppm");
  svg.raw("</g>\n<g fill=\"#1f3b73\">\n");
  for (size_t k = 0; k < order.size(); ++k) {
    const std::string& label = sticks[order[k]].label;
    const double c = lay.center[k];
    if (lay.vertical) {
      // reads bottom to top, its baseline a third of the font right of the leader
      const double x = c + lay.font * 0.35;
      svg.text(x, band_bottom, label, lay.font, "start",
               "class=\"label\" transform=\"rotate(-90 " + px(x) + " " + px(band_bottom) + ")\"");
    } else {
      svg.text(c, band_bottom - 1, label, lay.font, "middle", "class=\"label\"");
    }
  }
  svg.raw("</g>\n");
  return svg.finish();
}

}  // namespace larmor::chem
