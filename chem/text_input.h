// Line-oriented reading of the text inputs larmor consumes (SD files, TSV/CSV tables, peak lists, SMILES
// files) whether they sit on disk plain, gzip- or xz-compressed, or arrive on stdin.
//
// Why a reader of our own: the NMRShiftDB2 exports ship as .sdf.gz and .tsv.xz, and silently stopping at a
// truncated or corrupt archive would quietly shrink a dataset. So compression is detected from the magic
// bytes (not the file name, which also makes compressed stdin work), decompression is streamed (the pb table
// is ~80 MB unpacked), and every failure of the compressed stream (truncation, bad CRC, garbage) is a
// larmor::Error naming the input. Lines are numbered from 1 so every parser above can say "file:line".
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace larmor::chem {

enum class Compression : uint8_t { None = 0, Gzip = 1, Xz = 2 };

// True when this build can read (and write) xz streams (liblzma was found: LARMOR_WITH_LZMA).
bool xz_supported();

// A source of decompressed bytes. Implementations: plain file/stdin, gzip (zlib), xz (liblzma), memory.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Fills up to `capacity` bytes; returns 0 only at the clean end of the input. Throws larmor::Error on a
  // truncated/corrupt compressed stream or an I/O error.
  virtual size_t read(char* buffer, size_t capacity) = 0;
};

class TextReader {
 public:
  // `path` "-" reads stdin. Gzip and xz are recognised by their magic bytes. Throws larmor::Error naming the
  // path when it cannot be opened (or is xz without liblzma).
  static TextReader open(const std::string& path);
  // Reads `text` as if it were a file called `name` (tests, fuzzing, text already in memory). Compressed
  // bytes in `text` are decompressed like a file's.
  static TextReader from_string(std::string name, std::string text);

  TextReader(TextReader&&) noexcept;
  TextReader& operator=(TextReader&&) noexcept;
  ~TextReader();

  // Next line without its '\n' (and without a trailing '\r'). False at end of input. Throws larmor::Error
  // "<name>: ..." when the compressed stream is truncated or corrupt.
  bool next_line(std::string& line);
  int64_t line_number() const { return line_number_; }  // 1-based number of the last line returned
  const std::string& name() const { return name_; }
  Compression compression() const { return compression_; }
  // "<name>:<line>" of the last line returned, for messages.
  std::string where() const;

 private:
  TextReader(std::string name, Compression compression, std::unique_ptr<ByteSource> source);
  bool fill();

  std::string name_;
  Compression compression_ = Compression::None;
  std::unique_ptr<ByteSource> source_;
  std::vector<char> buffer_;
  size_t begin_ = 0, end_ = 0;
  bool eof_ = false;
  int64_t line_number_ = 0;
};

// Whole input as one string (decompressed). Same errors as TextReader.
std::string read_text_file(const std::string& path);

// Compresses `data` (gzip via zlib, xz via liblzma). Throws larmor::Error for Xz when !xz_supported().
std::string compress_bytes(std::string_view data, Compression compression);

// Splits on every occurrence of `sep` (empty fields kept): "a\t\tb" -> {"a", "", "b"}.
std::vector<std::string_view> split_fields(std::string_view line, char sep);

// One RFC 4180 CSV record (quoted fields may hold commas, doubled quotes and newlines). Returns false at end
// of input; `first_line` gets the line number the record starts on. Throws larmor::Error "<name>:<line>:
// unterminated quoted field" when the input ends inside quotes.
bool next_csv_record(TextReader& in, std::vector<std::string>& fields, int64_t* first_line = nullptr);

// ASCII whitespace trimming shared by the parsers.
std::string_view trim(std::string_view s);

// Whole-string number parsing (surrounding ASCII whitespace allowed; a leading '+' accepted). parse_double
// accepts only finite values. Both return false instead of throwing, so callers can name the field.
bool parse_double(std::string_view s, double& out);
bool parse_int64(std::string_view s, int64_t& out);

}  // namespace larmor::chem
