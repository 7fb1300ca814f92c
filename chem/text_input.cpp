// Streaming decompression + line splitting (see text_input.h for why). The byte sources form a small chain:
// file/stdin/memory -> (gzip | xz | nothing) -> TextReader's line buffer. Decoders check that the compressed
// stream really ended (gzip trailer / xz stream footer) before reporting a clean end of input, so a
// truncated download is an error and never a silently shorter dataset.
#include "chem/text_input.h"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>

#ifdef LARMOR_WITH_LZMA
#include <lzma.h>
#endif

#include "engine/error.h"

namespace larmor::chem {

namespace {

constexpr size_t kChunk = 1 << 16;

[[noreturn]] void fail(const std::string& name, const std::string& what) { throw Error(name + ": " + what); }

// Plain bytes from a FILE* (owned unless it is stdin).
class FileSource final : public ByteSource {
 public:
  FileSource(std::string name, std::FILE* file, bool owned) : name_(std::move(name)), file_(file), owned_(owned) {}
  ~FileSource() override {
    if (owned_ && file_ != nullptr) std::fclose(file_);
  }
  size_t read(char* buffer, size_t capacity) override {
    size_t n = std::fread(buffer, 1, capacity, file_);
    if (n == 0 && std::ferror(file_)) fail(name_, std::string("read error: ") + std::strerror(errno));
    return n;
  }

 private:
  std::string name_;
  std::FILE* file_;
  bool owned_;
};

class MemorySource final : public ByteSource {
 public:
  explicit MemorySource(std::string data) : data_(std::move(data)) {}
  size_t read(char* buffer, size_t capacity) override {
    size_t n = std::min(capacity, data_.size() - pos_);
    std::memcpy(buffer, data_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::string data_;
  size_t pos_ = 0;
};

// Serves bytes already read for magic-number sniffing, then the rest of the inner source.
class PrefixedSource final : public ByteSource {
 public:
  PrefixedSource(std::string prefix, std::unique_ptr<ByteSource> inner)
      : prefix_(std::move(prefix)), inner_(std::move(inner)) {}
  size_t read(char* buffer, size_t capacity) override {
    if (pos_ < prefix_.size()) {
      size_t n = std::min(capacity, prefix_.size() - pos_);
      std::memcpy(buffer, prefix_.data() + pos_, n);
      pos_ += n;
      return n;
    }
    return inner_->read(buffer, capacity);
  }

 private:
  std::string prefix_;
  size_t pos_ = 0;
  std::unique_ptr<ByteSource> inner_;
};

// Compressed input buffer shared by the decoders: refills from the raw source and remembers its end.
struct RawInput {
  std::unique_ptr<ByteSource> raw;
  std::vector<char> data = std::vector<char>(kChunk);
  size_t begin = 0, end = 0;
  bool eof = false;
  uint64_t consumed = 0;  // compressed bytes handed to the decoder, for messages

  size_t available() const { return end - begin; }
  // Makes at least `want` bytes available unless the raw input ends first.
  void ensure(size_t want) {
    if (available() >= want || eof) return;
    if (begin > 0) {
      std::memmove(data.data(), data.data() + begin, available());
      end -= begin;
      begin = 0;
    }
    while (available() < want && !eof) {
      if (end == data.size()) data.resize(data.size() * 2);
      size_t n = raw->read(data.data() + end, data.size() - end);
      if (n == 0) eof = true;
      end += n;
    }
  }
};

bool is_gzip_magic(const char* p, size_t n) {
  return n >= 2 && static_cast<unsigned char>(p[0]) == 0x1f && static_cast<unsigned char>(p[1]) == 0x8b;
}
bool is_xz_magic(const char* p, size_t n) {
  static const unsigned char kXz[6] = {0xFD, '7', 'z', 'X', 'Z', 0x00};
  return n >= 6 && std::memcmp(p, kXz, 6) == 0;
}

class GzipSource final : public ByteSource {
 public:
  GzipSource(std::string name, std::unique_ptr<ByteSource> raw) : name_(std::move(name)) {
    in_.raw = std::move(raw);
    std::memset(&zs_, 0, sizeof zs_);
    if (inflateInit2(&zs_, 15 + 16) != Z_OK) fail(name_, "cannot initialise the gzip decoder");
  }
  ~GzipSource() override { inflateEnd(&zs_); }

  size_t read(char* buffer, size_t capacity) override {
    size_t produced = 0;
    while (produced == 0) {
      if (member_done_) {
        // Another gzip member may follow (concatenated .gz files are valid); anything else is garbage.
        in_.ensure(2);
        if (in_.available() == 0) return 0;
        if (!is_gzip_magic(in_.data.data() + in_.begin, in_.available()))
          fail(name_, "corrupt gzip file: trailing garbage after the compressed data (at compressed byte " +
                          std::to_string(in_.consumed) + ")");
        inflateReset(&zs_);
        member_done_ = false;
      }
      in_.ensure(1);  // zero bytes available only at the end of the raw input
      zs_.next_in = reinterpret_cast<Bytef*>(in_.data.data() + in_.begin);
      zs_.avail_in = static_cast<uInt>(std::min<size_t>(in_.available(), 1u << 30));
      zs_.next_out = reinterpret_cast<Bytef*>(buffer);
      zs_.avail_out = static_cast<uInt>(std::min<size_t>(capacity, 1u << 30));
      uInt avail_before = zs_.avail_in;
      int rc = inflate(&zs_, Z_NO_FLUSH);
      size_t used = avail_before - zs_.avail_in;
      in_.begin += used;
      in_.consumed += used;
      produced = reinterpret_cast<char*>(zs_.next_out) - buffer;
      if (rc == Z_STREAM_END) {
        member_done_ = true;
      } else if (rc == Z_OK || rc == Z_BUF_ERROR) {
        // No progress with the raw input exhausted: the member never reached its trailer.
        if (produced == 0 && used == 0 && in_.eof && in_.available() == 0)
          fail(name_, "truncated gzip stream: the file ends before the compressed data does (after " +
                          std::to_string(in_.consumed) + " compressed bytes)");
      } else {
        fail(name_, std::string("corrupt gzip data (") + (zs_.msg != nullptr ? zs_.msg : "zlib error " + std::to_string(rc)) +
                        ") at compressed byte " + std::to_string(in_.consumed));
      }
    }
    return produced;
  }

 private:
  std::string name_;
  RawInput in_;
  z_stream zs_;
  bool member_done_ = false;
};

#ifdef LARMOR_WITH_LZMA
const char* lzma_reason(lzma_ret rc) {
  switch (rc) {
    case LZMA_FORMAT_ERROR: return "not an xz stream / trailing garbage";
    case LZMA_OPTIONS_ERROR: return "unsupported xz options";
    case LZMA_DATA_ERROR: return "corrupt compressed data";
    case LZMA_BUF_ERROR: return "truncated stream";
    case LZMA_MEM_ERROR: return "out of memory";
    case LZMA_MEMLIMIT_ERROR: return "memory limit reached";
    case LZMA_UNSUPPORTED_CHECK: return "unsupported integrity check";
    default: return "decoder error";
  }
}

class XzSource final : public ByteSource {
 public:
  XzSource(std::string name, std::unique_ptr<ByteSource> raw) : name_(std::move(name)) {
    in_.raw = std::move(raw);
    lzma_ret rc = lzma_stream_decoder(&strm_, UINT64_MAX, LZMA_CONCATENATED);
    if (rc != LZMA_OK) fail(name_, std::string("cannot initialise the xz decoder: ") + lzma_reason(rc));
  }
  ~XzSource() override { lzma_end(&strm_); }

  size_t read(char* buffer, size_t capacity) override {
    if (done_) return 0;
    size_t produced = 0;
    while (produced == 0 && !done_) {
      in_.ensure(1);
      strm_.next_in = reinterpret_cast<const uint8_t*>(in_.data.data() + in_.begin);
      strm_.avail_in = in_.available();
      strm_.next_out = reinterpret_cast<uint8_t*>(buffer);
      strm_.avail_out = capacity;
      lzma_action action = (in_.eof && in_.available() == 0) ? LZMA_FINISH : LZMA_RUN;
      lzma_ret rc = lzma_code(&strm_, action);
      size_t used = in_.available() - strm_.avail_in;
      in_.begin += used;
      in_.consumed += used;
      produced = capacity - strm_.avail_out;
      if (rc == LZMA_STREAM_END) {
        done_ = true;
      } else if (rc == LZMA_BUF_ERROR && action == LZMA_FINISH) {
        fail(name_, "truncated xz stream: the file ends before the compressed data does (after " +
                        std::to_string(in_.consumed) + " compressed bytes)");
      } else if (rc != LZMA_OK && rc != LZMA_BUF_ERROR) {
        fail(name_, std::string("corrupt xz data (") + lzma_reason(rc) + ") at compressed byte " +
                        std::to_string(in_.consumed));
      }
    }
    return produced;
  }

 private:
  std::string name_;
  RawInput in_;
  lzma_stream strm_ = LZMA_STREAM_INIT;
  bool done_ = false;
};
#endif

// Sniffs the first bytes of `raw` and wraps it in the matching decoder.
std::unique_ptr<ByteSource> decode(const std::string& name, std::unique_ptr<ByteSource> raw, Compression& kind) {
  std::string head(6, '\0');
  size_t got = 0;
  while (got < head.size()) {
    size_t n = raw->read(head.data() + got, head.size() - got);
    if (n == 0) break;
    got += n;
  }
  head.resize(got);
  auto source = std::make_unique<PrefixedSource>(head, std::move(raw));
  if (is_gzip_magic(head.data(), got)) {
    kind = Compression::Gzip;
    return std::make_unique<GzipSource>(name, std::move(source));
  }
  if (is_xz_magic(head.data(), got)) {
    kind = Compression::Xz;
#ifdef LARMOR_WITH_LZMA
    return std::make_unique<XzSource>(name, std::move(source));
#else
    fail(name, "xz-compressed input, but this build has no liblzma (rebuild with liblzma, or unpack it with xz -d)");
#endif
  }
  kind = Compression::None;
  return source;
}

}  // namespace

bool xz_supported() {
#ifdef LARMOR_WITH_LZMA
  return true;
#else
  return false;
#endif
}

TextReader::TextReader(std::string name, Compression compression, std::unique_ptr<ByteSource> source)
    : name_(std::move(name)), compression_(compression), source_(std::move(source)), buffer_(kChunk) {}
TextReader::TextReader(TextReader&&) noexcept = default;
TextReader& TextReader::operator=(TextReader&&) noexcept = default;
TextReader::~TextReader() = default;

TextReader TextReader::open(const std::string& path) {
  std::unique_ptr<ByteSource> raw;
  std::string name = path;
  if (path == "-") {
    name = "stdin";
    raw = std::make_unique<FileSource>(name, stdin, false);
  } else {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) fail(path, std::string("cannot open: ") + std::strerror(errno));
    raw = std::make_unique<FileSource>(path, f, true);
  }
  Compression kind = Compression::None;
  auto source = decode(name, std::move(raw), kind);
  return TextReader(name, kind, std::move(source));
}

TextReader TextReader::from_string(std::string name, std::string text) {
  Compression kind = Compression::None;
  auto source = decode(name, std::make_unique<MemorySource>(std::move(text)), kind);
  return TextReader(std::move(name), kind, std::move(source));
}

bool TextReader::fill() {
  if (eof_) return false;
  if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buffer_.size()) buffer_.resize(buffer_.size() * 2);  // a line longer than the buffer
  size_t n = source_->read(buffer_.data() + end_, buffer_.size() - end_);
  if (n == 0) {
    eof_ = true;
    return false;
  }
  end_ += n;
  return true;
}

bool TextReader::next_line(std::string& line) {
  size_t scanned = begin_;
  for (;;) {
    const char* start = buffer_.data() + begin_;
    const void* nl = std::memchr(buffer_.data() + scanned, '\n', end_ - scanned);
    if (nl != nullptr) {
      size_t len = static_cast<const char*>(nl) - start;
      line.assign(start, len);
      begin_ += len + 1;
      break;
    }
    size_t pending = end_ - begin_;  // all scanned, no '\n' among them
    if (!fill()) {
      if (pending == 0) return false;
      line.assign(buffer_.data() + begin_, pending);  // last line without '\n'
      begin_ = end_;
      break;
    }
    scanned = begin_ + pending;
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  ++line_number_;
  if (line_number_ == 1 && line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // UTF-8 BOM
  return true;
}

std::string TextReader::where() const { return name_ + ":" + std::to_string(line_number_); }

std::string read_text_file(const std::string& path) {
  TextReader in = TextReader::open(path);
  std::string out, line;
  while (in.next_line(line)) {
    out += line;
    out += '\n';
  }
  return out;
}

std::string compress_bytes(std::string_view data, Compression compression) {
  if (compression == Compression::None) return std::string(data);
  if (compression == Compression::Gzip) {
    z_stream zs;
    std::memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      throw Error("compress_bytes: cannot initialise gzip");
    std::string out(deflateBound(&zs, static_cast<uLong>(data.size())) + 64, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    zs.avail_in = static_cast<uInt>(data.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    int rc = deflate(&zs, Z_FINISH);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) throw Error("compress_bytes: gzip compression failed");
    return out;
  }
#ifdef LARMOR_WITH_LZMA
  std::string out(lzma_stream_buffer_bound(data.size()), '\0');
  size_t pos = 0;
  lzma_ret rc = lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, nullptr, reinterpret_cast<const uint8_t*>(data.data()),
                                        data.size(), reinterpret_cast<uint8_t*>(out.data()), &pos, out.size());
  if (rc != LZMA_OK) throw Error("compress_bytes: xz compression failed");
  out.resize(pos);
  return out;
#else
  throw Error("compress_bytes: this build has no liblzma, cannot write xz");
#endif
}

std::vector<std::string_view> split_fields(std::string_view line, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t pos = line.find(sep, start);
    if (pos == std::string_view::npos) {
      out.push_back(line.substr(start));
      return out;
    }
    out.push_back(line.substr(start, pos - start));
    start = pos + 1;
  }
}

bool next_csv_record(TextReader& in, std::vector<std::string>& fields, int64_t* first_line) {
  fields.clear();
  std::string line;
  if (!in.next_line(line)) return false;
  if (first_line != nullptr) *first_line = in.line_number();
  int64_t start_line = in.line_number();
  std::string field;
  bool quoted = false;
  for (;;) {
    for (size_t i = 0; i < line.size(); ++i) {
      char c = line[i];
      if (quoted) {
        if (c == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') {
            field += '"';
            ++i;
          } else {
            quoted = false;
          }
        } else {
          field += c;
        }
      } else if (c == '"') {
        quoted = true;
      } else if (c == ',') {
        fields.push_back(std::move(field));
        field.clear();
      } else {
        field += c;
      }
    }
    if (!quoted) break;
    field += '\n';  // a quoted field spans lines
    if (!in.next_line(line))
      throw Error(in.name() + ":" + std::to_string(start_line) + ": unterminated quoted field (input ends inside quotes)");
  }
  fields.push_back(std::move(field));
  return true;
}

std::string_view trim(std::string_view s) {
  size_t b = 0, e = s.size();
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; };
  while (b < e && space(s[b])) ++b;
  while (e > b && space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

bool parse_double(std::string_view s, double& out) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  double v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return false;
  out = v;
  return true;
}

bool parse_int64(std::string_view s, int64_t& out) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return false;
  out = v;
  return true;
}

}  // namespace larmor::chem
