// SVG figures for evaluation and prediction: a parity plot and an error histogram for `larmor eval shift
// --svg`, and a stick spectrum with atom labels for `larmor predict --svg` / larmor::format_svg.
//
// Why it is built this way:
//   - Pure functions, data in and a standalone SVG 1.1 document out (xmlns, viewBox, UTF-8, every text and
//     attribute XML-escaped): no plotting library and no Open Babel, so they live in larmor_chemio, are
//     testable on strings, and the files open in any browser or vector editor.
//   - Machine-readable marks: points are <circle>, histogram bars <rect class="bar"> and spectrum sticks
//     <line class="stick">, each bar and stick with a <title> child ("... : count", "label: ppm") that
//     browsers show as a tooltip and tests parse.
//   - Files stay small for 30k+ points: parity coordinates are rounded to 0.1 px and a point that lands on
//     the same rounded pixel as an earlier one is drawn once (the legend's n, MAE and RMSE use every pair);
//     the point opacity falls with n so dense regions read as darker.
//   - Ticks are "nice" (1, 2 or 5 x 10^k) so labels are round numbers; spectra use the chemists' axis
//     (ppm decreasing to the right) with a default window per nucleus (13C 0..220, 1H 0..12) widened to
//     the data. Peak labels sit on one band above the sticks in the sticks' order, spread apart just enough
//     not to overlap (least squares, see layout_labels in the .cpp) and joined to their sticks by bent
//     leader lines, as NMR software annotates peaks; when they do not fit side by side they are rotated
//     to read upwards (and shrunk if needed).
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace larmor::chem {

// One peak of a stick spectrum: position, height (the number of atoms it represents, e.g. 3 for a CH3's
// hydrogens) and its label ("C3", "C2,C6", "C0 (3H)").
struct SpectrumStick {
  double ppm = 0;
  double atoms = 1;
  std::string label;
};

// Predicted against reference: pairs are (reference ppm, predicted ppm). Square plot with equal axis
// ranges, the y = x diagonal, and a legend with n, MAE and RMSE. `nucleus` is "13C", "1H", ... (shown as
// a superscript mass number). Throws larmor::Error on no pairs or a non-finite value.
std::string parity_plot_svg(const std::vector<std::pair<double, double>>& pairs, const std::string& title,
                            const std::string& nucleus);

// Histogram of errors (predicted - reference) in `unit`: a symmetric range around 0 clipped at the 99.5th
// percentile of |error| (values beyond it are counted in the edge bins and noted), nice bin widths, and
// n, mean, MAE and RMSE. Throws larmor::Error on no errors or a non-finite value.
std::string error_histogram_svg(const std::vector<double>& errors, const std::string& title,
                                const std::string& unit);

// Stick spectrum: ppm axis decreasing to the right, one stick per entry with height proportional to
// `atoms`, labels above the sticks (spread apart when close). No sticks draws the empty axis. Throws
// larmor::Error on a non-finite ppm or a non-positive atom count.
std::string stick_spectrum_svg(const std::vector<SpectrumStick>& sticks, const std::string& nucleus,
                               const std::string& title);

// ---- helpers (exposed for tests) ----
// Escapes & < > " ' for XML text and attribute values.
std::string xml_escape(const std::string& text);
// The smallest step of the form {1, 2, 5} x 10^k that is >= raw (raw > 0).
double nice_step(double raw);
// Multiples of nice_step((hi - lo) / target) within [lo, hi] (about `target` of them); {} when hi <= lo.
std::vector<double> nice_ticks(double lo, double hi, int target);

}  // namespace larmor::chem
