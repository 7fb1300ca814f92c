// Parsers that need no Open Babel: compressed/plain text input, NMRShiftDB2 SD tags and pb tables, literature
// peak text and user peak lists. Fixtures under tests/chem/fixtures are hand-written records in the upstream
// formats (well-known molecules, made-up IDs 9000xx); compressed variants are generated in a temp dir here.
#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "chem/nmr.h"
#include "chem/nmrshiftdb.h"
#include "chem/peak_list.h"
#include "chem/peak_text.h"
#include "chem/text_input.h"
#include "engine/error.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using namespace larmor;
using namespace larmor::chem;

namespace {
using test::error_of;  // tests/test_util.h

const std::string kFixtures = std::string(LARMOR_SOURCE_DIR) + "/tests/chem/fixtures/";

struct TempDir {
  fs::path dir;
  TempDir() {
    dir = fs::temp_directory_path() / ("larmor_parsers_" + std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string path(const std::string& name) const { return (dir / name).string(); }
};

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::string> all_lines(TextReader& in) {
  std::vector<std::string> lines;
  std::string line;
  while (in.next_line(line)) lines.push_back(line);
  return lines;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string some_text() {
  std::string text;
  for (int i = 0; i < 2000; ++i) text += "line " + std::to_string(i) + "\tshift;mult;idx|" + std::to_string(i * 0.5) + "\n";
  return text;
}

}  // namespace

// ---- text input -------------------------------------------------------------------------------------------

TEST_CASE("text_input: lines, CRLF, BOM, last line without newline, line numbers") {
  TextReader in = TextReader::from_string("mem", "\xEF\xBB\xBF" "first\r\nsecond\n\nlast");
  CHECK(in.compression() == Compression::None);
  std::string line;
  REQUIRE(in.next_line(line));
  CHECK(line == "first");
  CHECK(in.line_number() == 1);
  REQUIRE(in.next_line(line));
  CHECK(line == "second");
  REQUIRE(in.next_line(line));
  CHECK(line.empty());
  REQUIRE(in.next_line(line));
  CHECK(line == "last");
  CHECK(in.where() == "mem:4");
  CHECK_FALSE(in.next_line(line));
  CHECK_FALSE(in.next_line(line));

  TextReader empty = TextReader::from_string("empty", "");
  CHECK_FALSE(empty.next_line(line));

  std::string long_line(300000, 'x');  // longer than the internal buffer
  TextReader big = TextReader::from_string("big", long_line + "\nend\n");
  auto lines = all_lines(big);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == long_line);
  CHECK(lines[1] == "end");
}

TEST_CASE("text_input: missing file is an error naming it") {
  std::string msg = error_of([] { TextReader::open("/nonexistent/dir/peaks.txt.gz"); });
  CHECK(contains(msg, "/nonexistent/dir/peaks.txt.gz"));
}

TEST_CASE("text_input: gzip written with zlib reads back; concatenated members too") {
  TempDir tmp;
  const std::string text = some_text();
  const std::string path = tmp.path("table.tsv.gz");
  gzFile gz = gzopen(path.c_str(), "wb");
  REQUIRE(gz != nullptr);
  REQUIRE(gzwrite(gz, text.data(), static_cast<unsigned>(text.size())) == static_cast<int>(text.size()));
  REQUIRE(gzclose(gz) == Z_OK);

  TextReader in = TextReader::open(path);
  CHECK(in.compression() == Compression::Gzip);
  auto lines = all_lines(in);
  REQUIRE(lines.size() == 2000);
  CHECK(lines[1999] == "line 1999\tshift;mult;idx|" + std::to_string(1999 * 0.5));
  CHECK(read_text_file(path) == text);

  // Compression is detected from the bytes, not the name.
  const std::string renamed = tmp.path("table.tsv");
  fs::copy_file(path, renamed);
  CHECK(read_text_file(renamed) == text);

  // Two gzip members back to back are one stream (as `cat a.gz b.gz` produces).
  std::string two = compress_bytes("a\nb\n", Compression::Gzip) + compress_bytes("c\n", Compression::Gzip);
  TextReader multi = TextReader::from_string("multi.gz", two);
  CHECK(all_lines(multi) == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("text_input: truncated or corrupt gzip is an Error naming the file, never a short read") {
  TempDir tmp;
  const std::string text = some_text();
  const std::string packed = compress_bytes(text, Compression::Gzip);
  REQUIRE(packed.size() > 100);
  for (size_t cut : {packed.size() - 4, packed.size() - 9, packed.size() / 2, size_t{12}}) {
    CAPTURE(cut);
    const std::string path = tmp.path("cut" + std::to_string(cut) + ".sdf.gz");
    write_bytes(path, packed.substr(0, cut));
    std::string msg = error_of([&] { read_text_file(path); });
    CHECK(contains(msg, path));
    CHECK(contains(msg, "truncated gzip"));
  }
  std::string corrupt = packed;
  for (size_t i = packed.size() / 3; i < packed.size() / 3 + 16; ++i) corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  const std::string bad = tmp.path("corrupt.gz");
  write_bytes(bad, corrupt);
  std::string msg = error_of([&] { read_text_file(bad); });
  CHECK(contains(msg, bad));
  CHECK(contains(msg, "gzip"));

  const std::string trailing = tmp.path("trailing.gz");
  write_bytes(trailing, packed + "garbage");
  CHECK(contains(error_of([&] { read_text_file(trailing); }), "trailing garbage"));
}

TEST_CASE("text_input: xz round trip, truncated and corrupt xz") {
  if (!xz_supported()) {
    MESSAGE("built without liblzma: xz input is rejected with a clear error");
    std::string xz_magic("\xFD" "7zXZ\0", 6);
    CHECK(contains(error_of([&] { TextReader::from_string("t.xz", xz_magic + "rest"); }), "liblzma"));
    return;
  }
  TempDir tmp;
  const std::string text = some_text();
  const std::string packed = compress_bytes(text, Compression::Xz);
  const std::string path = tmp.path("spectra.tsv.xz");
  write_bytes(path, packed);
  TextReader in = TextReader::open(path);
  CHECK(in.compression() == Compression::Xz);
  CHECK(all_lines(in).size() == 2000);
  CHECK(read_text_file(path) == text);

  for (size_t cut : {packed.size() - 1, packed.size() - 20, packed.size() / 2}) {
    CAPTURE(cut);
    const std::string cut_path = tmp.path("cut" + std::to_string(cut) + ".xz");
    write_bytes(cut_path, packed.substr(0, cut));
    std::string msg = error_of([&] { read_text_file(cut_path); });
    CHECK(contains(msg, cut_path));
    CHECK(contains(msg, "xz"));
  }
  std::string corrupt = packed;
  for (size_t i = packed.size() / 2; i < packed.size() / 2 + 16; ++i) corrupt[i] = static_cast<char>(corrupt[i] ^ 0x33);
  const std::string bad = tmp.path("corrupt.xz");
  write_bytes(bad, corrupt);
  CHECK(contains(error_of([&] { read_text_file(bad); }), bad));
}

TEST_CASE("text_input: CSV records with quotes, commas and newlines") {
  TextReader in = TextReader::from_string("lit.csv", "id,text,n\n1,\"a, b\",2\n2,\"say \"\"hi\"\"\nnext line\",3\n3,,\n");
  std::vector<std::string> f;
  int64_t first = 0;
  REQUIRE(next_csv_record(in, f, &first));
  CHECK(f == std::vector<std::string>{"id", "text", "n"});
  REQUIRE(next_csv_record(in, f, &first));
  CHECK(f == std::vector<std::string>{"1", "a, b", "2"});
  REQUIRE(next_csv_record(in, f, &first));
  CHECK(first == 3);
  CHECK(f == std::vector<std::string>{"2", "say \"hi\"\nnext line", "3"});
  REQUIRE(next_csv_record(in, f, &first));
  CHECK(first == 5);
  CHECK(f == std::vector<std::string>{"3", "", ""});
  CHECK_FALSE(next_csv_record(in, f));

  TextReader open_quote = TextReader::from_string("bad.csv", "a,\"never closed\nmore\n");
  CHECK(contains(error_of([&] { next_csv_record(open_quote, f); }), "bad.csv:1: unterminated"));
}

TEST_CASE("text_input: number helpers are strict") {
  double d = 0;
  int64_t i = 0;
  CHECK((parse_double(" 12.5 ", d) && d == 12.5));
  CHECK((parse_double("+3", d) && d == 3));
  CHECK((parse_double("-113.1", d) && d == -113.1));
  CHECK_FALSE(parse_double("12.5Q", d));
  CHECK_FALSE(parse_double("nan", d));
  CHECK_FALSE(parse_double("inf", d));
  CHECK_FALSE(parse_double("", d));
  CHECK((parse_int64("19", i) && i == 19));
  CHECK_FALSE(parse_int64("1.5", i));
  CHECK_FALSE(parse_int64("99999999999999999999", i));
  CHECK(split_fields("a\t\tb\t", '\t') == std::vector<std::string_view>{"a", "", "b", ""});
}

// ---- nuclei and solvents ------------------------------------------------------------------------------------

TEST_CASE("nmr: nuclei names round trip") {
  for (Nucleus n : {Nucleus::H1, Nucleus::C13, Nucleus::F19, Nucleus::P31}) {
    CHECK(parse_nucleus(nucleus_name(n)) == n);
  }
  CHECK(nucleus_element(Nucleus::C13) == 6);
  CHECK(nucleus_element(Nucleus::P31) == 15);
  CHECK(parse_nucleus(" 13c ") == Nucleus::C13);
  CHECK_FALSE(parse_nucleus("15N").has_value());
  CHECK_FALSE(parse_nucleus("H,H-COSY").has_value());
  CHECK_FALSE(parse_nucleus("").has_value());
}

TEST_CASE("nmr: solvent names map onto the vocabulary") {
  struct Row {
    const char* text;
    Solvent want;
  };
  const Row rows[] = {
      {"Chloroform-D1 (CDCl3)", Solvent::CDCl3},
      {"CDCl3", Solvent::CDCl3},
      {"chloroform-d", Solvent::CDCl3},
      {"CDCL3,TMS", Solvent::CDCl3},
      {"CDCI3", Solvent::CDCl3},
      {"Dimethylsulphoxide-D6 (DMSO-D6, C2D6SO))", Solvent::DMSO},
      {"DMSO", Solvent::DMSO},
      {"[D6]DMSO", Solvent::DMSO},
      {"d6-DMSO", Solvent::DMSO},
      {"(CD3)2SO", Solvent::DMSO},
      {"Methanol-D4 (CD3OD)", Solvent::CD3OD},
      {"methanol-d4", Solvent::CD3OD},
      {"MeOD", Solvent::CD3OD},
      {"d4-MeOH", Solvent::CD3OD},
      {"Acetone-D6 ((CD3)2CO)", Solvent::Acetone},
      {"acetone-d6", Solvent::Acetone},
      {"Deuteriumoxide (D2O)", Solvent::D2O},
      {"Water (H2O)", Solvent::D2O},
      {"Benzene-D6 (C6D6)", Solvent::C6D6},
      {"C6D6", Solvent::C6D6},
      {"Unreported", Solvent::Unknown},
      {"Unknown", Solvent::Unknown},
      {"", Solvent::Unknown},
      {"N/A", Solvent::Unknown},
      {"Pyridin-D5 (C5D5N)", Solvent::Other},
      {"Acetonitrile-D3 (CD3CN)", Solvent::Other},  // "aceton" inside acetonitrile is not acetone
      {"o-dichlorobenzene-d4", Solvent::Other},      // not benzene
      {"TETRACHLORO-METHANE (CCl4)", Solvent::Other},
      {"Chloroform-D1 (CDCl3) + Methanol-D4 (CD3OD) (9:1)", Solvent::Other},  // mixture
      {"Methanol-D4/D2O (CD3OD/D4)", Solvent::Other},
  };
  for (const Row& r : rows) {
    CAPTURE(r.text);
    CHECK(parse_solvent(r.text) == r.want);
  }
  CHECK(std::string(solvent_name(Solvent::DMSO)) == "DMSO-d6");
  CHECK(std::string(solvent_name(Solvent::Unknown)) == "unknown");
}

// ---- NMRShiftDB2 SD tags ------------------------------------------------------------------------------------

TEST_CASE("nmrshiftdb: spectrum tag names") {
  auto a = parse_spectrum_tag_name("Spectrum 13C 0");
  REQUIRE(a);
  CHECK(a->nucleus == "13C");
  CHECK(a->number == 0);
  auto b = parse_spectrum_tag_name("Spectrum H,C-ed. HSQC 6");
  REQUIRE(b);
  CHECK(b->nucleus == "H,C-ed. HSQC");
  CHECK(b->number == 6);
  CHECK_FALSE(parse_spectrum_tag_name("Solvent").has_value());
  CHECK_FALSE(parse_spectrum_tag_name("SpectrumX").has_value());
  CHECK(contains(error_of([] { parse_spectrum_tag_name("Spectrum 13C"); }), "Spectrum 13C"));
  CHECK(contains(error_of([] { parse_spectrum_tag_name("Spectrum 13C x"); }), "<nucleus> <number>"));
}

TEST_CASE("nmrshiftdb: spectrum values with multiplicities, intensities and atom indices") {
  auto peaks = parse_spectrum_peaks("8.1;0.0Q;3|9.0;0.0Q;19|", Nucleus::C13, "Spectrum 13C 0");
  REQUIRE(peaks.size() == 2);
  CHECK(peaks[0].shift == doctest::Approx(8.1));
  CHECK(peaks[0].mult == 3);
  CHECK(peaks[0].intensity == 0.0);
  CHECK(peaks[0].atom == 3);
  CHECK(peaks[1].atom == 19);
  CHECK(peaks[0].pattern.empty());

  auto mults = parse_spectrum_peaks("1;0.0S;0|2;0.0D;1|3;0.0T;2|4;0.0Q;3|5;0.0s;4|6;0.0;5|7;;6|8;0.0CH2;7|9;0.0u;8",
                                    Nucleus::C13, "ctx");
  REQUIRE(mults.size() == 9);
  const int8_t want[] = {0, 1, 2, 3, 0, kMultUnknown, kMultUnknown, 2, kMultUnknown};
  for (size_t i = 0; i < 9; ++i) CHECK(mults[i].mult == want[i]);
  CHECK(std::isnan(mults[6].intensity));
  CHECK(mults[8].pattern == "u");

  auto h = parse_spectrum_peaks("7.26;0.0dd;4|1.25;0.0br s;7|3.1;0.0;2", Nucleus::H1, "Spectrum 1H 1");
  REQUIRE(h.size() == 3);
  CHECK(h[0].pattern == "dd");
  CHECK(h[0].mult == kMultUnknown);
  CHECK(h[1].pattern == "br s");
  CHECK(h[2].pattern.empty());

  auto f = parse_spectrum_peaks("-83.328;1.0S;13|-127.695;0.666667S;11|", Nucleus::F19, "Spectrum 19F 0");
  REQUIRE(f.size() == 2);
  CHECK(f[0].shift == doctest::Approx(-83.328));
  CHECK(f[1].intensity == doctest::Approx(0.666667));
  CHECK(f[1].pattern == "S");

  // A value wrapped over two lines parses as one.
  CHECK(parse_spectrum_peaks("14.2;0.0Q;0|60.\n4;0.0T;1|", Nucleus::C13, "ctx")[1].shift == doctest::Approx(60.4));
  CHECK(parse_spectrum_peaks("", Nucleus::C13, "ctx").empty());
  CHECK(parse_spectrum_peaks(" | |", Nucleus::C13, "ctx").empty());

  std::string msg = error_of([] { parse_spectrum_peaks("8.1;0.0Q;3|x;0.0Q;19|", Nucleus::C13, "SD item <Spectrum 13C 0>"); });
  CHECK(contains(msg, "SD item <Spectrum 13C 0>"));
  CHECK(contains(msg, "peak 2"));
  CHECK(contains(msg, "non-numeric shift"));
  CHECK(contains(error_of([] { parse_spectrum_peaks("8.1;3", Nucleus::C13, "c"); }), "expected"));
  CHECK(contains(error_of([] { parse_spectrum_peaks("8.1;0.0Q;-1", Nucleus::C13, "c"); }), "out of range"));
  CHECK(contains(error_of([] { parse_spectrum_peaks("8.1;0.0Q;3.5", Nucleus::C13, "c"); }), "not an integer"));
  CHECK(contains(error_of([] { parse_spectrum_peaks("8.1;1.2.3Q;3", Nucleus::C13, "c"); }), "intensity"));
}

TEST_CASE("nmrshiftdb: indexed per-spectrum tags") {
  auto solvents = parse_indexed_tag("0:Chloroform-D1 (CDCl3) 1:Unreported ", "Solvent");
  REQUIRE(solvents.size() == 2);
  CHECK(solvents[0] == "Chloroform-D1 (CDCl3)");
  CHECK(solvents[1] == "Unreported");

  auto methods = parse_indexed_tag("0:1H, H,H-COSY, H,C-HMBC, DEPTQ 1:Unreported", "Assignment Method");
  CHECK(methods[0] == "1H, H,H-COSY, H,C-HMBC, DEPTQ");

  auto order = parse_indexed_tag("2:Methanol-D4 (CD3OD) 0:DMSO-d6 3:Methanol-D4 (CD3OD)", "Solvent");
  CHECK(order.size() == 3);
  CHECK(order[0] == "DMSO-d6");
  CHECK(order[3] == "Methanol-D4 (CD3OD)");

  // A ratio "1:1" after a space splits only if 1 is a spectrum number of the record (and not repeated).
  std::set<int32_t> only_zero{0};
  auto ratio = parse_indexed_tag("0:CDCl3/CD3OD 1:1", "Solvent", &only_zero);
  REQUIRE(ratio.size() == 1);
  CHECK(ratio[0] == "CDCl3/CD3OD 1:1");
  auto repeat = parse_indexed_tag("0:a 0:b", "Solvent");
  CHECK(repeat.size() == 1);
  CHECK(repeat[0] == "a 0:b");
  CHECK(parse_indexed_tag("0:Chloroform-D1 (CDCl3) + Methanol-D4 (CD3OD) (9:1)", "Solvent")[0] ==
        "Chloroform-D1 (CDCl3) + Methanol-D4 (CD3OD) (9:1)");

  CHECK(parse_indexed_tag("", "Solvent").empty());
  CHECK(parse_indexed_tag("0:", "Solvent")[0].empty());
  std::string msg = error_of([] { parse_indexed_tag("CDCl3", "Solvent"); });
  CHECK(contains(msg, "<Solvent>"));
  CHECK(contains(msg, "CDCl3"));

  CHECK(parse_meta_number("298") == 298);
  CHECK(parse_meta_number(" 100.6 ") == doctest::Approx(100.6));
  CHECK(parse_meta_number("100 Mhz") == 100);
  CHECK(std::isnan(parse_meta_number("Unreported")));
  CHECK(std::isnan(parse_meta_number("Not mentioned.")));
  CHECK(std::isnan(parse_meta_number("0.0")));
  CHECK(std::isnan(parse_meta_number("")));
}

TEST_CASE("nmrshiftdb: all spectra of a record from its tag map") {
  std::map<std::string, std::string> tags = {
      {"nmrshiftdb2 ID", "900002"},
      {"Program", "1:CSEARCH "},
      {"Solvent", "0:Chloroform-D1 (CDCl3) 1:Unreported 3:Methanol-D4 (CD3OD)"},
      {"Temperature [K]", "0:298 1:Unreported 3:300"},
      {"Field Strength [MHz]", "0:125 1:Unreported 3:500"},
      {"Spectrum 13C 0", "21.5;0.0Q;0|137.9;0.0S;1|"},
      {"Spectrum 13C 1", "21.3;0.0Q;0|137.7;0.0S;1|"},
      {"Spectrum H,H-COSY 2", ""},
      {"Spectrum 1H 3", "2.34;0.0s;0|"},
      {"Spectrum 17O 4", "58.4;0.0S;18|"},
      {"Spectrum 13C 5", ""},
  };
  std::vector<std::string> skipped;
  auto spectra = spectra_from_sd_tags(tags, &skipped);
  REQUIRE(spectra.size() == 3);
  CHECK(spectra[0].nucleus == Nucleus::C13);
  CHECK(spectra[0].number == 0);
  CHECK(spectra[0].solvent == Solvent::CDCl3);
  CHECK(spectra[0].solvent_text == "Chloroform-D1 (CDCl3)");
  CHECK(spectra[0].temperature_K == 298);
  CHECK(spectra[0].field_MHz == 125);
  CHECK_FALSE(spectra[0].predicted);
  CHECK(spectra[1].number == 1);
  CHECK(spectra[1].predicted);
  CHECK(spectra[1].program == "CSEARCH");
  CHECK(spectra[1].solvent == Solvent::Unknown);
  CHECK(std::isnan(spectra[1].field_MHz));
  CHECK(spectra[2].nucleus == Nucleus::H1);
  CHECK(spectra[2].solvent == Solvent::CD3OD);
  CHECK(spectra[2].peaks[0].pattern == "s");
  REQUIRE(skipped.size() == 3);
  CHECK(contains(skipped[0] + skipped[1] + skipped[2], "Spectrum 17O 4: nucleus not supported"));
  CHECK(contains(skipped[0] + skipped[1] + skipped[2], "Spectrum 13C 5: empty spectrum"));
  CHECK(nmrshiftdb_id(tags) == 900002);

  auto nmr_program = tags;
  nmr_program.erase("Program");
  nmr_program["NMRProgram"] = "0:Spartan";
  auto s2 = spectra_from_sd_tags(nmr_program);
  CHECK(s2[0].predicted);
  CHECK_FALSE(s2[1].predicted);

  auto bad_value = tags;
  bad_value["Spectrum 1H 3"] = "2.34;0.0s;zero|";
  CHECK(contains(error_of([&] { spectra_from_sd_tags(bad_value); }), "<Spectrum 1H 3>"));
  auto bad_index = tags;
  bad_index["Temperature [K]"] = "298";
  CHECK(contains(error_of([&] { spectra_from_sd_tags(bad_index); }), "<Temperature [K]>"));
  auto bad_id = tags;
  bad_id["nmrshiftdb2 ID"] = "abc";
  CHECK(contains(error_of([&] { nmrshiftdb_id(bad_id); }), "nmrshiftdb2 ID"));
  CHECK_FALSE(nmrshiftdb_id({}).has_value());
}

TEST_CASE("nmrshiftdb: SD record splitter on a hand-written file, plain and gzip") {
  const std::string path = kFixtures + "nmrshiftdb_sample.sdf";
  TempDir tmp;
  const std::string gz = tmp.path("sample.sdf.gz");
  write_bytes(gz, compress_bytes(read_text_file(path), Compression::Gzip));
  for (const std::string& p : {path, gz}) {
    CAPTURE(p);
    TextReader in = TextReader::open(p);
    SdRecordReader reader(in);
    std::vector<SdRecord> records;
    SdRecord r;
    while (reader.next(r)) records.push_back(r);
    REQUIRE(records.size() == 4);
    CHECK(records[0].index == 1);
    CHECK(records[0].first_line == 1);
    CHECK(records[0].title == "ethyl acetate");
    CHECK(records[0].molblock.rfind("M  END\n") == records[0].molblock.size() - 7);
    CHECK(records[0].error.empty());
    CHECK(records[0].tags.at("nmrshiftdb2 ID") == "900001");
    CHECK(records[0].tags.at("Spectrum 13C 0") == "14.2;0.0Q;0|60.4;0.0T;1|171.1;0.0S;3|21.0;0.0Q;5|");
    CHECK(records[1].index == 2);
    CHECK(records[1].first_line == 36);
    CHECK(records[1].tags.at("Spectrum H,H-COSY 2").empty());
    CHECK(records[3].title == "fluorobenzene");
    CHECK(records[3].tags.at("Temperature [K]") == "0:298");  // last record without "$$$$"
    CHECK(records[3].error.empty());

    auto ea = spectra_from_sd_tags(records[0].tags);
    REQUIRE(ea.size() == 2);
    CHECK(ea[0].nucleus == Nucleus::C13);
    CHECK(ea[0].peaks.size() == 4);
    CHECK(ea[0].peaks[2].shift == doctest::Approx(171.1));
    CHECK(ea[0].peaks[2].mult == 0);
    CHECK(ea[0].peaks[2].atom == 3);
    CHECK(ea[0].field_MHz == doctest::Approx(100.6));
    CHECK(ea[1].nucleus == Nucleus::H1);
    CHECK(std::isnan(ea[1].temperature_K));
    CHECK(ea[1].field_MHz == 400);

    std::vector<std::string> skipped;
    auto tol = spectra_from_sd_tags(records[1].tags, &skipped);
    REQUIRE(tol.size() == 2);
    CHECK_FALSE(tol[0].predicted);
    CHECK(tol[0].solvent == Solvent::Other);  // CDCl3 + CD3OD mixture
    CHECK(tol[0].field_MHz == 100);
    CHECK(tol[1].predicted);
    CHECK(tol[1].program == "HOSE code using nmrshiftdb2 data");
    CHECK(skipped.size() == 2);  // the COSY and the 15N spectrum

    std::string msg = error_of([&] { spectra_from_sd_tags(records[2].tags); });
    CHECK(contains(msg, "<Spectrum 13C 0>"));
    CHECK(contains(msg, "non-numeric shift"));

    auto fb = spectra_from_sd_tags(records[3].tags);
    REQUIRE(fb.size() == 1);
    CHECK(fb[0].nucleus == Nucleus::F19);
    CHECK(fb[0].peaks[0].shift == doctest::Approx(-113.1));
    CHECK(fb[0].solvent == Solvent::CDCl3);
  }
}

TEST_CASE("nmrshiftdb: SD splitter reports malformed records and keeps going") {
  const std::string text =
      "cut short\n  x\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\n>  <nmrshiftdb2 ID>  (1)\n7\n\n$$$$\n"
      "no tag name\n\n\n  0  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n> broken header\nvalue\n\n$$$$\n"
      "good\n\n\n  0  0  0  0  0  0  0  0  0  0999 V2000\nM  END\n>  <a>  (3)\nline 1\nline 2\n\n$$$$\n\n\n";
  TextReader in = TextReader::from_string("bad.sdf", text);
  SdRecordReader reader(in);
  SdRecord r;
  REQUIRE(reader.next(r));
  CHECK(contains(r.error, "line 5: data header before 'M  END'"));
  CHECK(r.tags.at("nmrshiftdb2 ID") == "7");
  REQUIRE(reader.next(r));
  CHECK(contains(r.error, "data header without <name>"));
  REQUIRE(reader.next(r));
  CHECK(r.error.empty());
  CHECK(r.index == 3);
  CHECK(r.tags.at("a") == "line 1\nline 2");
  CHECK_FALSE(reader.next(r));  // trailing blank lines are no record

  TextReader unterminated = TextReader::from_string("u.sdf", "title\n\n\n  1  0  0  0  0  0  0  0  0  0999 V2000\n");
  SdRecordReader r2(unterminated);
  REQUIRE(r2.next(r));
  CHECK(contains(r.error, "record ends before 'M  END'"));
}

// ---- pb tables ----------------------------------------------------------------------------------------------

TEST_CASE("nmrshiftdb: pb spectra table rows, predicted flag, bad rows with line numbers") {
  TextReader in = TextReader::open(kFixtures + "pb_spectra_sample.tsv");
  std::vector<PbSpectrumRow> rows;
  std::vector<std::pair<int64_t, std::string>> errors;
  PbReadStats stats = read_pb_spectra(
      in, [&](PbSpectrumRow&& r) { rows.push_back(std::move(r)); },
      [&](int64_t line, const std::string& why) { errors.emplace_back(line, why); });
  CHECK(stats.rows == 9);
  CHECK(stats.delivered == 4);
  CHECK(stats.other_nucleus == 1);
  CHECK(stats.bad == 4);
  CHECK(stats.rows_by_nucleus[static_cast<size_t>(Nucleus::C13)] == 3);  // two good + the empty one
  CHECK(stats.predicted_by_nucleus[static_cast<size_t>(Nucleus::C13)] == 2);
  CHECK(stats.empty_by_nucleus[static_cast<size_t>(Nucleus::C13)] == 1);
  REQUIRE(rows.size() == 4);

  const PbSpectrumRow& ea = rows[0];
  CHECK(ea.line == 2);
  CHECK(ea.id == 900001);
  CHECK(ea.smiles == "CCOC(C)=O");
  CHECK(ea.inchikey == "XEKOWRVHYACXOJ-UHFFFAOYSA-N");
  CHECK(ea.spectrum.nucleus == Nucleus::C13);
  CHECK_FALSE(ea.spectrum.predicted);
  CHECK(ea.spectrum.solvent == Solvent::CDCl3);
  CHECK(ea.spectrum.temperature_K == 298);
  REQUIRE(ea.spectrum.peaks.size() == 4);
  CHECK(ea.spectrum.peaks[1].mult == 2);
  CHECK(ea.spectrum.peaks[1].atom == -1);  // SD atom order is not the SMILES order
  CHECK(ea.sd_atom_index == std::vector<int32_t>{0, 1, 3, 5});
  CHECK(rows[1].spectrum.nucleus == Nucleus::H1);
  CHECK(rows[1].spectrum.peaks[1].pattern == "q");
  CHECK(rows[2].spectrum.predicted);
  CHECK(rows[2].spectrum.program == "HOSE code using nmrshiftdb2 data");
  CHECK(rows[2].spectrum.peaks[1].mult == 0);  // lower-case "s"
  CHECK(rows[3].spectrum.nucleus == Nucleus::F19);

  REQUIRE(errors.size() == 4);
  CHECK(errors[0].first == 6);
  CHECK(contains(errors[0].second, "non-numeric shift"));
  CHECK(errors[1].first == 7);
  CHECK(contains(errors[1].second, "n_peaks says 2"));
  CHECK(errors[2].first == 8);
  CHECK(contains(errors[2].second, "empty 13C spectrum"));
  CHECK(errors[3].first == 9);
  CHECK(contains(errors[3].second, "columns"));

  TextReader wrong = TextReader::from_string("wrong.tsv", "id\tsmiles\n1\tC\n");
  std::string msg = error_of([&] { read_pb_spectra(wrong, nullptr, nullptr); });
  CHECK(contains(msg, "wrong.tsv:1"));
  CHECK(contains(msg, "nmrshiftdb2_id"));
}

TEST_CASE("nmrshiftdb: pb 31P single-P table") {
  TextReader in = TextReader::open(kFixtures + "pb_31p_sample.tsv");
  std::vector<P31Row> rows;
  std::vector<int64_t> bad_lines;
  PbReadStats stats = read_pb_31p_single(
      in, [&](P31Row&& r) { rows.push_back(std::move(r)); },
      [&](int64_t line, const std::string& why) {
        bad_lines.push_back(line);
        CHECK(contains(why, "shift_ppm"));
      });
  CHECK(stats.rows == 3);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].id == 900010);
  CHECK(rows[0].spectrum.nucleus == Nucleus::P31);
  REQUIRE(rows[0].spectrum.peaks.size() == 1);
  CHECK(rows[0].spectrum.peaks[0].shift == doctest::Approx(29.1));
  CHECK(rows[0].spectrum.solvent == Solvent::CDCl3);
  CHECK(rows[0].spectrum.field_MHz == 162);
  CHECK(rows[1].spectrum.solvent == Solvent::Unknown);
  CHECK(bad_lines == std::vector<int64_t>{4});

  TextReader wrong = TextReader::from_string("x.tsv", "a\tb\n");
  CHECK(contains(error_of([&] { read_pb_31p_single(wrong, nullptr, nullptr); }), "x.tsv:1"));
}

// ---- literature peak text -----------------------------------------------------------------------------------

TEST_CASE("peak_text: 13C with C-F couplings, header, field, solvent (the issue's example)") {
  PeakText pt = parse_peak_text(
      "13C NMR (101 MHz, CDCl3) \xCE\xB4 170.1, 133.5 (q, J = 32.4 Hz), 128.9, 124.0 (q, 1JCF = 272.1 Hz), 72.6 (2C), "
      "55.3 (CH3), 21.0.");
  CHECK(pt.nucleus == Nucleus::C13);
  CHECK(pt.field_MHz == 101);
  CHECK(pt.solvent == Solvent::CDCl3);
  REQUIRE(pt.peaks.size() == 7);
  CHECK(pt.peaks[0].shift == doctest::Approx(170.1));
  CHECK(pt.peaks[1].pattern == "q");
  CHECK(pt.peaks[1].mult == kMultUnknown);  // a C-F quartet says nothing about attached H
  CHECK(pt.peaks[4].intensity == 2);       // (2C)
  CHECK(pt.peaks[5].mult == 3);            // (CH3)
  CHECK(pt.peaks[6].shift == doctest::Approx(21.0));
  CHECK(pt.warnings.empty());
  for (const Peak& p : pt.peaks) {
    CHECK(p.atom == -1);
    CHECK(std::isnan(p.shift_hi));
  }
}

TEST_CASE("peak_text: 1H with ranges, unicode dashes, multiplicities, integrals, coupling lists") {
  PeakText pt = parse_peak_text(
      "1H NMR (400\xE2\x80\x89MHz, DMSO-d6) \xCE\xB4 12.09 (s, 1H), 7.52\xE2\x80\x93" "7.48 (m, 2H), "
      "7.26\xE2\x80\x93" "7.31 (m, 2H), 7.83 (dd, J = 8.0, 1.6 Hz, 1H), 5.38 (br. s, 1H, NH), 3.54 (br s, 2 H), "
      "1.25 (d, J = 6.2 Hz, 3H), \xE2\x88\x92" "0.05 (s, 9H)");
  CHECK(pt.nucleus == Nucleus::H1);
  CHECK(pt.field_MHz == 400);
  CHECK(pt.solvent == Solvent::DMSO);
  REQUIRE(pt.peaks.size() == 8);
  CHECK(pt.peaks[0].pattern == "s");
  CHECK(pt.peaks[0].intensity == 1);
  CHECK(pt.peaks[1].shift == doctest::Approx(7.48));  // written high-to-low: low end first
  CHECK(pt.peaks[1].shift_hi == doctest::Approx(7.52));
  CHECK(pt.peaks[2].shift == doctest::Approx(7.26));
  CHECK(pt.peaks[2].shift_hi == doctest::Approx(7.31));
  CHECK(pt.peaks[2].pattern == "m");
  CHECK(pt.peaks[3].pattern == "dd");
  CHECK(pt.peaks[3].intensity == 1);  // the "1.6 Hz" of the J list is no integral and no peak
  CHECK(pt.peaks[4].pattern == "br s");
  CHECK(pt.peaks[5].intensity == 2);
  CHECK(pt.peaks[6].intensity == 3);
  CHECK(pt.peaks[7].shift == doctest::Approx(-0.05));  // unicode minus
  CHECK(pt.warnings.empty());
  CHECK(pt.peaks[0].mult == kMultUnknown);
}

TEST_CASE("peak_text: header variants (order, δ spellings, colon, δ =, no δ)") {
  PeakText a = parse_peak_text("1H NMR (CDCl3, 500 MHz): \xCE\xB4 = 8.05 (d, J = 8.4 Hz, 2 H), 1.35 (s, 9 H)");
  CHECK(a.field_MHz == 500);
  CHECK(a.solvent == Solvent::CDCl3);
  REQUIRE(a.peaks.size() == 2);
  CHECK(a.peaks[1].intensity == 9);

  PeakText b = parse_peak_text("13C-NMR (100 MHz, D2O): 135.8, 134.1, 132.4");
  CHECK(b.nucleus == Nucleus::C13);
  CHECK(b.solvent == Solvent::D2O);
  CHECK(b.peaks.size() == 3);

  PeakText c = parse_peak_text("1H NMR (400 MHz, CDCl3) \xC3\xB0: 5.09 [C1] (s, 2H, CH2); 6.86 [C7 and C6] (dd, 2H, Ar-H)");
  REQUIRE(c.peaks.size() == 2);  // "ð" (mis-encoded δ), assignments in brackets
  CHECK(c.peaks[1].pattern == "dd");

  PeakText d = parse_peak_text("13C NMR (100 MHz, DMSO-d6) 167.3, 157.6, 72.6 (2C), 35.4, and 33.6");
  CHECK(d.peaks.size() == 5);
  CHECK(d.peaks[4].shift == doctest::Approx(33.6));

  PeakText e = parse_peak_text("\xC2\xB9H NMR (600 MHz, Methanol-d4) \xCE\xB4 (ppm) 7.10 (1H, d, J = 2.3 Hz)");
  CHECK(e.nucleus == Nucleus::H1);  // superscript digits
  CHECK(e.solvent == Solvent::CD3OD);
  REQUIRE(e.peaks.size() == 1);
  CHECK(e.peaks[0].pattern == "d");

  PeakText f = parse_peak_text("19F NMR (376 MHz, CDCl3) \xCE\xB4 -62.8 (s, 3F)");
  CHECK(f.nucleus == Nucleus::F19);
  REQUIRE(f.peaks.size() == 1);
  CHECK(f.peaks[0].shift == doctest::Approx(-62.8));

  PeakText g = parse_peak_text("13C NMR (CDCl3) \xCE\xB4 128.58*; 127.99#; 22.2 \xC3\x97 2, 14.1 ppm");
  REQUIRE(g.peaks.size() == 4);
  CHECK(g.peaks[2].intensity == 2);  // "× 2": two carbons
}

TEST_CASE("peak_text: label-first and comma-separated styles") {
  PeakText a = parse_peak_text("1H NMR (CD3OD, ppm): H1 (1H) 3.3; H2 (1H, m) 2.5; H7 (3H, s) 1.7", Nucleus::H1);
  REQUIRE(a.peaks.size() == 3);
  CHECK(a.peaks[1].shift == doctest::Approx(2.5));
  CHECK(a.peaks[1].pattern == "m");
  CHECK(a.peaks[2].intensity == 3);

  PeakText b = parse_peak_text("1H-NMR, d7-DMF, T = 25 \xC2\xB0" "C: 8.16, 1H, s, HC2; 7.93, 2H, d, HC8");
  CHECK(b.solvent == Solvent::Other);
  REQUIRE(b.peaks.size() == 2);  // "25 °C" is a temperature, not a shift
  CHECK(b.peaks[0].intensity == 1);
  CHECK(b.peaks[0].pattern == "s");
  CHECK(b.peaks[1].pattern == "d");

  PeakText c = parse_peak_text("1H NMR (DMSO-d6): 0.92 t (60H; 3JHH = 6.9 Hz; -CH3), 2.32\xE2\x80\x93" "2.46 m (60H)");
  REQUIRE(c.peaks.size() == 2);
  CHECK(c.peaks[0].pattern == "t");
  CHECK(c.peaks[0].intensity == 60);
  CHECK(c.peaks[1].pattern == "m");
}

TEST_CASE("peak_text: prose with δH/δC keeps the requested nucleus; lists end at the next section") {
  const char* prose =
      "The 1H and 13C NMR data showed two methyl groups (\xCE\xB4H 4.27, 4.44; \xCE\xB4" "C 43.3, 57.7) and one "
      "aromatic proton (\xCE\xB4H 9.14)";
  PeakText h = parse_peak_text(prose, Nucleus::H1);
  REQUIRE(h.peaks.size() == 3);
  CHECK(h.peaks[2].shift == doctest::Approx(9.14));
  PeakText c = parse_peak_text(prose, Nucleus::C13);
  REQUIRE(c.peaks.size() == 2);
  CHECK(c.peaks[0].shift == doctest::Approx(43.3));

  PeakText both = parse_peak_text(
      "1H NMR (400 MHz, CDCl3) \xCE\xB4 7.26 (s, 1H), 2.31 (s, 3H). 13C NMR (101 MHz, CDCl3) \xCE\xB4 137.9, 21.5. "
      "HRMS (ESI) m/z calcd for C7H8 92.0626");
  CHECK(both.nucleus == Nucleus::H1);
  REQUIRE(both.peaks.size() == 2);
  CHECK_FALSE(both.warnings.empty());  // says where the list ended

  PeakText mismatch = parse_peak_text("13C NMR (CDCl3) \xCE\xB4 170.1", Nucleus::H1);
  CHECK(mismatch.peaks.empty());
  CHECK(contains(mismatch.warnings.front(), "names 13C"));

  // Prose numbers that are not shifts: amounts, temperatures, ratios, labels, years, figure numbers.
  PeakText none = parse_peak_text(
      "Thirty milligram was dissolved in 0.5\xE2\x80\x89mL of D2O at 25 \xC2\xB0" "C (ratio 9:1) in 2023, see Figure 7 and H-1",
      Nucleus::C13);
  CHECK(none.peaks.empty());
  CHECK(none.solvent == Solvent::D2O);  // the solvent is still read from prose
  CHECK_FALSE(none.warnings.empty());

  PeakText listed = parse_peak_text(
      "The signals of anomeric carbon appeared at 97.96, 98.28, 105.02 and 110.76 ppm in the 13C NMR spectrum",
      Nucleus::C13);
  CHECK(listed.peaks.size() == 4);
}

TEST_CASE("peak_text: never throws on garbage, reports what it skipped") {
  const char* inputs[] = {"",
                          "N/A",
                          "13C NMR",
                          "((((((((",
                          ")))] 1.2.3.4 -- - -5 ~ to to",
                          "\xFF\xFE\xC3\x28 broken utf8 \xE2\x82",
                          "\xCE\xB4 = = = , , ; ; 7.",
                          "1H NMR \xCE\xB4 7.26 (m, 2H",  // unclosed bracket
                          "7.26 (m, 2H)) 3.1 (s]"};
  for (const char* in : inputs) {
    CAPTURE(in);
    PeakText pt;
    CHECK_NOTHROW(pt = parse_peak_text(in));
    if (pt.peaks.empty()) CHECK_FALSE(pt.warnings.empty());
  }
  PeakText unclosed = parse_peak_text("1H NMR \xCE\xB4 7.26 (m, 2H, 3.10 (s, 3H)");
  CHECK(unclosed.peaks.size() == 2);  // the unpaired '(' does not swallow the rest

  std::string huge;
  for (int i = 0; i < 5000; ++i) huge += "x, ";
  PeakText many = parse_peak_text("1H NMR \xCE\xB4 7.26, " + huge);
  CHECK(many.peaks.size() == 1);
  CHECK(many.warnings.size() <= 65);
}

TEST_CASE("peak_text: normalisation of unicode") {
  std::string n = normalise_peak_text("7.26\xE2\x80\x93" "7.31 \xE2\x88\x92" "1 \xCE\xB4\xC2\xA0H 2\xE2\x80\xB2 \xC3\x97 \xC2\xB0" "C \xE4\xB8\xAD");
  CHECK(n == std::string("7.26-7.31 -1 ") + kDeltaMark + " H 2' x " + kDegreeMark + "C " + kOpaqueMark);
  CHECK(normalise_peak_text(std::string("a\x01" "b")) == "a b");  // control bytes cannot fake a mark
}

// ---- user peak lists ----------------------------------------------------------------------------------------

TEST_CASE("peak_list: file with comments, blank lines, multiplicities and intensities") {
  auto peaks = read_peak_list_file(kFixtures + "peak_list_ethyl_acetate.txt");
  REQUIRE(peaks.size() == 4);
  CHECK(peaks[0].shift == doctest::Approx(171.1));
  CHECK(peaks[0].mult == 0);
  CHECK(std::isnan(peaks[0].intensity));
  CHECK(peaks[1].mult == 2);
  CHECK(peaks[1].intensity == 1.0);
  CHECK(peaks[2].mult == 3);
  CHECK(peaks[3].shift == doctest::Approx(14.2));
  CHECK(peaks[3].mult == 3);

  auto more = parse_peak_list_text("128.5\n128.5 2\n77.0 100\n21.0 Q 0.5\n55.1 CH3\n-3.2 d\n");
  REQUIRE(more.size() == 6);
  CHECK(more[0].mult == kMultUnknown);
  CHECK(more[1].mult == 2);
  CHECK(more[2].mult == kMultUnknown);
  CHECK(more[2].intensity == 100);
  CHECK(more[3].intensity == 0.5);
  CHECK(more[4].mult == 3);
  CHECK(more[5].shift == doctest::Approx(-3.2));

  TempDir tmp;
  const std::string gz = tmp.path("peaks.txt.gz");
  write_bytes(gz, compress_bytes("171.1 s\n60.4 t\n", Compression::Gzip));
  CHECK(read_peak_list_file(gz).size() == 2);
}

TEST_CASE("peak_list: errors name the line") {
  CHECK(contains(error_of([] { parse_peak_list_text("171.1\nabc\n", "mine.txt"); }), "mine.txt:2: non-numeric shift 'abc'"));
  CHECK(contains(error_of([] { parse_peak_list_text("# c\n171.1 X\n", "p"); }), "p:2: unknown multiplicity 'X'"));
  CHECK(contains(error_of([] { parse_peak_list_text("171.1 5 1.0\n", "p"); }), "p:1: multiplicity 5 out of range"));
  CHECK(contains(error_of([] { parse_peak_list_text("171.1 s 1.0 extra\n", "p"); }), "p:1: expected"));
  CHECK(contains(error_of([] { parse_peak_list_text("171.1 s one\n", "p"); }), "p:1: non-numeric intensity"));
  CHECK(contains(error_of([] { parse_peak_list_text("nan\n", "p"); }), "p:1: non-numeric shift"));
  CHECK(contains(error_of([] { parse_peak_list_text("# only a comment\n\n", "empty.txt"); }), "empty.txt: empty peak list"));
  CHECK(contains(error_of([] { parse_peak_list_text("", "e"); }), "empty peak list"));
}
