// The L2 store (l2.hpp). A spans.bin record is
//   header  "ACRS", span u32, n u32, first token u64, crc32 of the record (taken with this field 0),
//           crc32 of the S token ids (so ids are read and checked without the K/V): 28 bytes, LE
//   tokens  int32 [S], zero after n
//   k, v    [L, Hkv, S, D]: float16, or int8 with float16 scales k_scale, v_scale [L, Hkv, S]
//           after them (absent with codec none)
//   reps    float16 [Lp, Hkv, R, D], the span index entries (last, so they are read alone)
#include "l2.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <utility>

#include "half.hpp"

namespace acre {

const char *const CODECS[3] = {"none", "float16", "int8"};

namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "spans.bin is little-endian");

constexpr const char *FORMAT = "acre-l2";
constexpr size_t HEADER = ACRE_STORE_RECORD_HEADER_BYTES;
constexpr size_t MAX_RECORD_BYTES = size_t(1) << 30;  // larger is a damaged header, not a real store
constexpr int32_t MAX_DIM = 1 << 20;
const char *const STORE_FILES[] = {"store.json", "spans.bin", "pot.npz", "resume.npz", "lock"};

uint32_t crc_of(uint32_t crc, const uint8_t *data, size_t n) { return uint32_t(::crc32(crc, data, uInt(n))); }

void put16(uint8_t *p, uint16_t v) { std::memcpy(p, &v, 2); }
void put32(uint8_t *p, uint32_t v) { std::memcpy(p, &v, 4); }
uint16_t get16(const uint8_t *p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
uint32_t get32(const uint8_t *p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Byte offsets inside a record of k (which = 0) or v (1), and of their int8 scales.
size_t values_at(const StoreMeta &m, int which) {
  return HEADER + 4 * size_t(m.span_tokens) + size_t(which) * (m.codec == "int8" ? 1 : 2) * m.kv_values();
}
size_t scales_at(const StoreMeta &m, int which) {
  return HEADER + 4 * size_t(m.span_tokens) + 2 * m.kv_values() +
         size_t(which) * 2 * (m.kv_values() / m.head_dim);
}

// K or V of n tokens, float32 [L, Hkv, n, D], into a record's [L, Hkv, S, D] (rows past n stay zero).
// int8 keeps one float16 scale per row, max |x| / 127 (1 for an all-zero row and for padding).
void encode(const StoreMeta &m, const float *x, int64_t n, int which, uint8_t *rec) {
  const int64_t S = m.span_tokens, D = m.head_dim, rows = int64_t(m.kv_values()) / D;
  const bool half = m.codec == "float16";
  uint8_t *values = rec + values_at(m, which), *scales = half ? nullptr : rec + scales_at(m, which);
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t lh = r / S, t = r % S;
    const float *row = t < n ? x + (lh * n + t) * D : nullptr;
    if (half) {
      for (int64_t d = 0; row && d < D; ++d) put16(values + 2 * (r * D + d), to_half(row[d]));
      continue;
    }
    float most = 0;
    for (int64_t d = 0; row && d < D; ++d) most = std::max(most, std::fabs(row[d]));
    const float scale = most / 127.0f;
    const uint16_t h = to_half(scale == 0 ? 1.0f : scale);
    put16(scales + 2 * r, h);
    const float by = from_half(h);
    auto *q = reinterpret_cast<int8_t *>(values + r * D);
    for (int64_t d = 0; row && d < D; ++d) {
      const float y = std::nearbyint(row[d] / by);  // round half to even, as numpy's rint
      q[d] = std::isnan(y) ? 0 : int8_t(std::clamp(y, -127.0f, 127.0f));
    }
  }
}

// The first n tokens' K or V of a record, decoded to float32 [L, Hkv, n, D].
void decode(const StoreMeta &m, const uint8_t *rec, int64_t n, int which, float *out) {
  const int64_t S = m.span_tokens, D = m.head_dim, LH = int64_t(m.layers) * m.kv_heads;
  const bool half = m.codec == "float16";
  const uint8_t *values = rec + values_at(m, which), *scales = half ? nullptr : rec + scales_at(m, which);
  for (int64_t lh = 0; lh < LH; ++lh) {
    for (int64_t t = 0; t < n; ++t) {
      const int64_t r = lh * S + t;
      float *row = out + (lh * n + t) * D;
      if (half) {
        for (int64_t d = 0; d < D; ++d) row[d] = from_half(get16(values + 2 * (r * D + d)));
        continue;
      }
      const float by = from_half(get16(scales + 2 * r));
      const auto *q = reinterpret_cast<const int8_t *>(values + r * D);
      for (int64_t d = 0; d < D; ++d) row[d] = float(q[d]) * by;
    }
  }
}

struct Header {
  bool magic;
  uint32_t span, n;
  uint64_t start;
  uint32_t crc, token_crc;
};

Header parse_header(const uint8_t *p) {
  Header h{std::memcmp(p, "ACRS", 4) == 0, get32(p + 4), get32(p + 8), 0, get32(p + 20), get32(p + 24)};
  std::memcpy(&h.start, p + 12, 8);
  return h;
}

// crc32 of a record: its header with the crc field 0, then the payload.
uint32_t record_crc(const uint8_t *record, size_t bytes) {
  uint8_t head[HEADER];
  std::memcpy(head, record, HEADER);
  put32(head + 20, 0);
  return crc_of(crc_of(0, head, HEADER), record + HEADER, bytes - HEADER);
}

// The dir as given, without trailing slashes (messages name the files under it).
std::string clean_dir(const char *dir) {
  if (!dir || !*dir) fail(ACRE_ERR_INVALID_ARGUMENT, "the store directory is empty");
  std::string d = dir;
  while (d.size() > 1 && d.back() == '/') d.pop_back();
  return d;
}

void refuse_non_directory(const std::string &dir) {
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    fail(ACRE_ERR_STORE, dir +
                             ": is a file, not a store directory; give --store a directory (new, empty, or "
                             "holding a document ingested before)");
}

bool is_store_file(const std::string &name) {
  for (const char *f : STORE_FILES)
    if (name == f) return true;
  const auto ends = [&](const std::string &tail) {
    return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
  };
  return ends(".tmp") || ends(".tmp.npz");  // temporary files a kill can leave behind
}

bool regular_file(const std::string &path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

std::string read_text(const std::string &path, bool &ok) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  std::string text;
  ok = bool(fd);
  char block[1 << 16];
  for (ssize_t got; ok && (got = ::read(fd.get(), block, sizeof block)) != 0;) {
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) ok = false;
    if (got > 0) text.append(block, size_t(got));
  }
  return text;
}

std::string dump(const ojson &j) {  // as Python's json.dumps(indent=2) + "\n" wrote it
  return j.dump(2, ' ', true, ojson::error_handler_t::replace) + "\n";
}

void write_json(const std::string &path, const std::string &tmp, const std::string &text) {
  replace_durably(path, tmp, [&](int fd) { return write_all(fd, text.data(), text.size()); });
}

// What is wrong with a meta ("" if nothing).
std::string meta_problem(const StoreMeta &m) {
  if (std::find_if(std::begin(CODECS), std::end(CODECS), [&](const char *c) { return m.codec == c; }) ==
      std::end(CODECS))
    return "unknown L2 codec '" + m.codec + "'; choose ('none', 'float16', 'int8')";
  const std::pair<const char *, int32_t> fields[] = {
      {"span_tokens", m.span_tokens},   {"layers", m.layers},
      {"kv_heads", m.kv_heads},         {"head_dim", m.head_dim},
      {"probe_layers", m.probe_layers}, {"reps", m.reps}};
  for (const auto &[name, value] : fields)
    if (value <= 0 || value >= MAX_DIM) return std::string("meta.") + name + " must be a positive integer";
  if (m.probe_layers > m.layers) return "meta.probe_layers must not exceed meta.layers";
  if (m.record_bytes() > MAX_RECORD_BYTES)
    return "span records of " + std::to_string(m.record_bytes()) + " bytes";
  return "";
}

// The meta of a store.json, every field checked (it comes from a file); throws a message.
StoreMeta meta_of(const ojson &info) {
  const auto bad = [](const std::string &why) { throw std::invalid_argument(why); };
  if (!info.contains("meta") || !info["meta"].is_object()) bad("meta must be an object");
  const ojson &j = info["meta"];
  static const char *const FIELDS[] = {"fingerprint", "span_tokens",  "layers", "kv_heads",
                                       "head_dim",    "probe_layers", "reps",   "codec"};
  if (j.size() != std::size(FIELDS)) bad("meta must have exactly the fields of StoreMeta");
  for (const char *f : FIELDS)
    if (!j.contains(f)) bad("meta must have exactly the fields of StoreMeta");
  if (!j["fingerprint"].is_string() || !j["codec"].is_string())
    bad("meta.fingerprint must be text and meta.codec one of none, float16, int8");
  StoreMeta m;
  m.fingerprint = j["fingerprint"].get<std::string>();
  m.codec = j["codec"].get<std::string>();
  for (auto [name, field] : {std::pair{"span_tokens", &m.span_tokens}, std::pair{"layers", &m.layers},
                             std::pair{"kv_heads", &m.kv_heads}, std::pair{"head_dim", &m.head_dim},
                             std::pair{"probe_layers", &m.probe_layers}, std::pair{"reps", &m.reps}}) {
    const ojson &v = j[name];
    if (!v.is_number_integer() || v.get<int64_t>() <= 0 || v.get<int64_t>() >= MAX_DIM)
      bad(std::string("meta.") + name + " must be a positive integer");
    *field = int32_t(v.get<int64_t>());
  }
  if (info.contains("complete") && !info["complete"].is_boolean()) bad("complete must be true or false");
  const std::string problem = meta_problem(m);
  if (!problem.empty()) bad(problem);
  return m;
}

Fd lock_for_writing(const std::string &dir) {
  const std::string path = dir + "/lock";
  Fd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) fail(ACRE_ERR_STORE, path + ": cannot open the writer's lock (" + os_error() + ")");
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      fail(ACRE_ERR_STORE, dir + ": another process is writing this document; try again when it is done");
    fail(ACRE_ERR_STORE, path + ": cannot take the writer's lock (" + os_error() + ")");
  }
  return fd;
}

void need_array(const acre_array *a, const char *what, acre_dtype dtype, std::vector<int64_t> dims) {
  if (!a) fail(ACRE_ERR_INVALID_ARGUMENT, std::string(what) + " is NULL");
  check_array(*a, what);
  std::string want = std::string(acre_dtype_name(dtype)) + " [",
              got = std::string(acre_dtype_name(a->info.dtype)) + " [";
  for (size_t i = 0; i < dims.size(); ++i) want += (i ? ", " : "") + std::to_string(dims[i]);
  for (int32_t i = 0; i < a->info.rank; ++i) got += (i ? ", " : "") + std::to_string(a->info.dims[i]);
  if (want != got)
    fail(ACRE_ERR_INVALID_ARGUMENT, std::string(what) + " must be " + want + "], not " + got + "]");
}

}  // namespace

size_t StoreMeta::record_bytes() const {
  size_t bytes = HEADER + 4 * size_t(span_tokens) + reps_bytes();
  if (codec == "float16") bytes += 2 * 2 * kv_values();
  if (codec == "int8") bytes += 2 * kv_values() + 2 * 2 * (kv_values() / std::max(head_dim, 1));
  return bytes;
}

StoreMeta store_meta(const acre_store_meta &c) {
  if (!c.fingerprint || !c.codec)
    fail(ACRE_ERR_INVALID_ARGUMENT, "meta.fingerprint and meta.codec are needed");
  StoreMeta m{c.fingerprint, c.span_tokens,  c.layers, c.kv_heads,
              c.head_dim,    c.probe_layers, c.reps,   c.codec};
  const std::string problem = meta_problem(m);
  if (!problem.empty()) fail(ACRE_ERR_STORE, problem);
  return m;
}

std::string peek_store(const std::string &given) {
  const std::string dir = clean_dir(given.c_str());
  refuse_non_directory(dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return "";
  std::vector<std::string> foreign;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!is_store_file(name)) foreign.push_back(name);
  }
  if (ec) fail(ACRE_ERR_STORE, dir + ": cannot list the directory (" + ec.message() + ")");
  if (!foreign.empty()) {
    std::sort(foreign.begin(), foreign.end());
    std::string held;
    for (size_t i = 0; i < std::min<size_t>(foreign.size(), 3); ++i) held += (i ? ", " : "") + foreign[i];
    fail(ACRE_ERR_STORE, dir + ": not an acre L2 store (it holds " + held +
                             (foreign.size() > 3 ? ", ..." : "") +
                             "); give --store a new or empty directory");
  }
  if (!regular_file(dir + "/store.json")) return "";
  bool ok = false;
  const std::string text = read_text(dir + "/store.json", ok);
  const ojson info = ok ? ojson::parse(text, nullptr, false) : ojson();
  return info.is_object() ? dump(info) : "{}\n";
}

Store::Store(std::string dir, StoreMeta meta, ojson info, bool writable, Fd lock)
    : dir_(std::move(dir)), meta_(std::move(meta)), writable_(writable), lock_(std::move(lock)) {
  set_info(std::move(info));
  const std::string path = file("spans.bin");
  spans_ = Fd(::open(path.c_str(), (writable ? O_RDWR | O_APPEND : O_RDONLY) | O_CLOEXEC));
  if (!spans_) fail(ACRE_ERR_STORE, path + ": cannot be opened (" + os_error() + ")");
}

void Store::set_info(ojson info) {
  info_ = std::move(info);
  info_text_ = dump(info_);
}

std::unique_ptr<Store> Store::create(const std::string &given, const StoreMeta &meta,
                                     const char *document_sha256) {
  const std::string dir = clean_dir(given.c_str());
  refuse_non_directory(dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(ACRE_ERR_STORE, dir + ": cannot create the store directory (" + ec.message() + ")");
  Fd lock = lock_for_writing(dir);  // before touching anything another writer may own
  // store.json goes first: a crash part way leaves leftovers (a free directory), never an old header
  // over new spans
  for (const char *name : {"store.json", "spans.bin", "pot.npz", "resume.npz"}) {
    const std::string path = dir + "/" + name;
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      fail(ACRE_ERR_STORE, path + ": cannot be replaced (" + os_error() + ")");
  }
  const std::string spans = dir + "/spans.bin";
  if (!Fd(::open(spans.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)))
    fail(ACRE_ERR_STORE, spans + ": cannot be created (" + os_error() + ")");
  ojson info = {{"format", FORMAT}, {"version", ACRE_STORE_VERSION}};
  info["meta"] = {{"fingerprint", meta.fingerprint},
                  {"span_tokens", meta.span_tokens},
                  {"layers", meta.layers},
                  {"kv_heads", meta.kv_heads},
                  {"head_dim", meta.head_dim},
                  {"probe_layers", meta.probe_layers},
                  {"reps", meta.reps},
                  {"codec", meta.codec}};
  info["complete"] = false;
  if (document_sha256) info["document_sha256"] = document_sha256;
  write_json(dir + "/store.json", dir + "/store.tmp", dump(info));
  return std::unique_ptr<Store>(new Store(dir, meta, std::move(info), true, std::move(lock)));
}

std::unique_ptr<Store> Store::open(const std::string &given, const char *fingerprint, bool writable) {
  const std::string dir = clean_dir(given.c_str());
  refuse_non_directory(dir);
  std::error_code ec;
  if (!fs::exists(dir, ec)) fail(ACRE_ERR_STORE, dir + ": no such store; ingest a document into it first");
  const std::string header = dir + "/store.json";
  if (!regular_file(header) || !regular_file(dir + "/spans.bin"))
    fail(ACRE_ERR_STORE, dir + ": not an L2 store (store.json or spans.bin missing)");
  bool ok = false;
  const std::string text = read_text(header, ok);
  if (!ok) fail(ACRE_ERR_STORE, header + ": cannot be read (" + os_error() + ")");
  ojson info = ojson::parse(text, nullptr, false);
  if (info.is_discarded()) fail(ACRE_ERR_STORE, header + ": unreadable store header (not valid JSON)");
  if (!info.is_object() || !info.contains("format") || info["format"] != FORMAT)
    fail(ACRE_ERR_STORE, header + ": not an acre L2 store");
  const ojson version = info.contains("version") ? info["version"] : ojson();
  if (!version.is_number_integer() || version.get<int64_t>() != ACRE_STORE_VERSION)
    fail(ACRE_ERR_STORE, header + ": L2 format version " + (version.is_null() ? "missing" : version.dump()) +
                             ", expected " + std::to_string(ACRE_STORE_VERSION));
  StoreMeta meta;
  try {
    meta = meta_of(info);
  } catch (const std::invalid_argument &e) {
    fail(ACRE_ERR_STORE, header + ": unreadable store header (" + e.what() + ")");
  }
  if (fingerprint && meta.fingerprint != fingerprint)
    fail(ACRE_ERR_STORE, dir + ": this document was ingested with another model or bundle; ingest it again");
  Fd lock = writable ? lock_for_writing(dir) : Fd();
  std::unique_ptr<Store> store(new Store(dir, meta, std::move(info), writable, std::move(lock)));
  store->scan();
  return store;
}

uint64_t Store::disk_bytes() const {
  struct stat st {};
  return ::fstat(spans_.get(), &st) == 0 ? uint64_t(st.st_size) : 0;
}

void Store::need_writable() const {
  if (!writable_) fail(ACRE_ERR_STORE, dir_ + ": opened read-only");
}

void Store::need_span(size_t span) const {
  if (span >= span_count())
    fail(ACRE_ERR_STORE, dir_ + ": span " + std::to_string(span) + " does not exist (" +
                             std::to_string(span_count()) + " spans)");
}

std::vector<uint8_t> Store::record(size_t span, const char *why) {
  const size_t rb = meta_.record_bytes();
  std::vector<uint8_t> raw(rb);
  const size_t got = pread_full(spans_.get(), raw.data(), rb, uint64_t(span) * rb);
  bytes_read_ += got;
  if (why && got != rb)
    fail(ACRE_ERR_STORE, file("spans.bin") + ": span " + std::to_string(span) + " " + why);
  raw.resize(got);
  return raw;
}

bool Store::verify(size_t span) {
  const std::vector<uint8_t> raw = record(span, nullptr);
  if (raw.size() != meta_.record_bytes()) return false;
  const Header h = parse_header(raw.data());
  return h.magic && record_crc(raw.data(), raw.size()) == h.crc;
}

void Store::scan() {
  const uint64_t size = disk_bytes(), rb = meta_.record_bytes();
  uint64_t count = size / rb;
  if (count && !verify(count - 1)) --count;  // a torn last write: its checksum fails
  uint8_t head[HEADER];
  for (uint64_t i = 0; i < count; ++i) {
    const bool read = pread_full(spans_.get(), head, HEADER, i * rb) == HEADER;
    const Header h = parse_header(head);
    // a first token whose span runs past int64 (or is negative as one) is no position the writer takes
    if (!read || !h.magic || h.span != i || h.n == 0 || h.n > uint32_t(meta_.span_tokens) ||
        h.start > uint64_t(INT64_MAX) - h.n) {
      count = i;  // records after a damaged header cannot be trusted to be in order
      break;
    }
    starts_.push_back(int64_t(h.start));
    lengths_.push_back(int32_t(h.n));
  }
  if (size != count * rb && writable_ && ::ftruncate(spans_.get(), off_t(count * rb)) != 0)
    fail(ACRE_ERR_STORE, file("spans.bin") + ": cannot discard a torn record (" + os_error() + ")");
}

void Store::append(int64_t start, const acre_array &tokens, const acre_array *k, const acre_array *v,
                   const acre_array &reps) {
  need_writable();
  const StoreMeta &m = meta_;
  if (tokens.info.rank != 1 || tokens.info.dims[0] <= 0 || tokens.info.dims[0] > m.span_tokens)
    fail(ACRE_ERR_INVALID_ARGUMENT, "span of " +
                                        std::to_string(tokens.info.rank == 1 ? tokens.info.dims[0] : 0) +
                                        " tokens; spans hold 1.." + std::to_string(m.span_tokens));
  const int64_t n = tokens.info.dims[0], S = m.span_tokens, D = m.head_dim;
  need_array(&tokens, "tokens", ACRE_DTYPE_INT32, {n});
  need_array(&reps, "reps", ACRE_DTYPE_FLOAT32, {m.probe_layers, m.kv_heads, m.reps, D});
  if (m.keeps_kv() || k || v) {
    need_array(k, "k", ACRE_DTYPE_FLOAT32, {m.layers, m.kv_heads, n, D});
    need_array(v, "v", ACRE_DTYPE_FLOAT32, {m.layers, m.kv_heads, n, D});
  }
  if (!lengths_.empty() && lengths_.back() != S)
    fail(ACRE_ERR_INVALID_ARGUMENT, "only the last span of a document may be partial");
  if (start < 0 || start > INT64_MAX - n)
    fail(ACRE_ERR_INVALID_ARGUMENT, "a span cannot start at token " + std::to_string(start));

  const size_t rb = m.record_bytes(), span = span_count();
  std::vector<uint8_t> rec(rb, 0);
  std::memcpy(&rec[HEADER], tokens.data, size_t(n) * 4);
  if (m.keeps_kv()) {
    encode(m, static_cast<const float *>(k->data), n, 0, rec.data());
    encode(m, static_cast<const float *>(v->data), n, 1, rec.data());
  }
  auto *rep_in = static_cast<const float *>(reps.data);
  for (size_t i = 0; i < m.reps_bytes() / 2; ++i)
    put16(&rec[rb - m.reps_bytes() + 2 * i], to_half(rep_in[i]));

  std::memcpy(&rec[0], "ACRS", 4);
  put32(&rec[4], uint32_t(span));
  put32(&rec[8], uint32_t(n));
  const uint64_t first = uint64_t(start);
  std::memcpy(&rec[12], &first, 8);
  put32(&rec[24], crc_of(0, &rec[HEADER], 4 * size_t(S)));
  put32(&rec[20], record_crc(rec.data(), rb));
  const uint64_t before = uint64_t(span) * rb;
  if (!write_all(spans_.get(), rec.data(), rb)) {
    const std::string reason = errno == EIO ? "short write" : os_error();
    const bool cut = ::ftruncate(spans_.get(), off_t(before)) == 0;  // no partial record stays behind
    fail(ACRE_ERR_STORE, file("spans.bin") + ": cannot write span " + std::to_string(span) + " (" + reason +
                             "); the " + std::to_string(span) + " spans before it are intact" +
                             (cut ? "" : " (a torn record follows them)") + ", ingest again to resume");
  }
  starts_.push_back(start);
  lengths_.push_back(int32_t(n));
}

void Store::read(size_t span, int32_t *tokens, float *k, float *v) {
  if (!meta_.keeps_kv())
    fail(ACRE_ERR_STORE, dir_ +
                             ": this store keeps no K/V (codec none); refill_mode reuse needs a store "
                             "ingested with codec float16 or int8");
  need_span(span);
  const std::vector<uint8_t> raw = record(span, "is cut short; not served");
  const Header h = parse_header(raw.data());
  if (!h.magic || h.span != span || h.n != uint32_t(lengths_[span]) || h.start != uint64_t(starts_[span]) ||
      record_crc(raw.data(), raw.size()) != h.crc)
    fail(ACRE_ERR_STORE,
         file("spans.bin") + ": span " + std::to_string(span) + " fails its checksum; not served");
  std::memcpy(tokens, &raw[HEADER], size_t(h.n) * 4);
  decode(meta_, raw.data(), h.n, 0, k);
  decode(meta_, raw.data(), h.n, 1, v);
}

void Store::read_tokens(size_t span, int32_t *tokens) {
  need_span(span);
  const size_t S = size_t(meta_.span_tokens);
  std::vector<uint8_t> raw(HEADER + 4 * S);
  const size_t got = pread_full(spans_.get(), raw.data(), raw.size(), uint64_t(span) * meta_.record_bytes());
  bytes_read_ += got;
  const Header h = parse_header(raw.data());
  if (got != raw.size() || !h.magic || h.span != span || h.n != uint32_t(lengths_[span]) ||
      crc_of(0, &raw[HEADER], 4 * S) != h.token_crc)
    fail(ACRE_ERR_STORE,
         file("spans.bin") + ": span " + std::to_string(span) + " fails its checksum; not served");
  std::memcpy(tokens, &raw[HEADER], size_t(h.n) * 4);
}

void Store::read_reps(size_t first, size_t count, uint16_t *out) {
  if (first > span_count() || count > span_count() - first)
    fail(ACRE_ERR_INVALID_ARGUMENT, "spans " + std::to_string(first) + ".." + std::to_string(first + count) +
                                        " of " + std::to_string(span_count()));
  const size_t rb = meta_.record_bytes(), bytes = meta_.reps_bytes();
  for (size_t i = 0; i < count; ++i) {
    if (pread_full(spans_.get(), reinterpret_cast<uint8_t *>(out) + i * bytes, bytes,
                   uint64_t(first + i) * rb + rb - bytes) != bytes)
      fail(ACRE_ERR_STORE, file("spans.bin") + ": span " + std::to_string(first + i) + " is cut short");
  }
}

void Store::finish(const std::vector<acre_array> &arrays, const std::string &extra_json) {
  need_writable();
  const ojson extra = ojson::parse(extra_json, nullptr, false);
  if (!extra.is_object()) fail(ACRE_ERR_INVALID_ARGUMENT, "finish: extra must be a JSON object");
  const std::string pot = file("pot.npz");
  if (sync_file(spans_.get()) != 0)
    fail(ACRE_ERR_STORE, pot + ": cannot write (" + os_error() + "); the store is unchanged");
  const uint32_t crc = write_npz(pot, arrays);
  ojson info = info_;
  info["complete"] = true;
  info["document_tokens"] = starts_.empty() ? 0 : starts_.back() + lengths_.back();
  info["spans"] = span_count();
  for (const auto &[key, value] : extra.items()) info[key] = value;
  info["pot_crc32"] = crc;
  write_json(file("store.json"), file("store.tmp"), dump(info));
  set_info(std::move(info));
  ::unlink(file("resume.npz").c_str());
}

void Store::checkpoint(const std::vector<acre_array> &arrays, const std::string &info_json) {
  need_writable();
  ojson info = ojson::parse(info_json, nullptr, false);
  if (!info.is_object()) fail(ACRE_ERR_INVALID_ARGUMENT, "checkpoint: info must be a JSON object");
  const std::string path = file("resume.npz");
  if (sync_file(spans_.get()) != 0)
    fail(ACRE_ERR_STORE, path + ": cannot write (" + os_error() + "); the store is unchanged");
  info["spans"] = span_count();
  const std::string text = info.dump(-1, ' ', true, ojson::error_handler_t::replace);
  acre_array blob{};
  blob.info.name = "info";
  blob.info.dtype = ACRE_DTYPE_UINT8;
  blob.info.rank = 1;
  blob.info.dims[0] = int64_t(text.size());
  blob.info.bytes = text.size();
  blob.data = text.data();
  std::vector<acre_array> all{blob};
  all.insert(all.end(), arrays.begin(), arrays.end());
  write_npz(path, all);
}

void Store::truncate(size_t spans) {
  need_writable();
  if (spans > span_count())
    fail(ACRE_ERR_INVALID_ARGUMENT,
         "cannot keep " + std::to_string(spans) + " of " + std::to_string(span_count()) + " spans");
  if (::ftruncate(spans_.get(), off_t(spans * meta_.record_bytes())) != 0)
    fail(ACRE_ERR_STORE, file("spans.bin") + ": cannot truncate (" + os_error() + ")");
  starts_.resize(spans);
  lengths_.resize(spans);
}

std::unique_ptr<Snapshot> Store::load_pot() const {
  if (!info_.contains("complete") || info_["complete"] != true)
    fail(ACRE_ERR_STORE, dir_ + ": ingest did not finish; ingest the document again");
  const std::string pot = dir_ + "/pot.npz";
  const ojson crc = info_.contains("pot_crc32") ? info_["pot_crc32"] : ojson();
  if (!regular_file(pot) || !crc.is_number_unsigned() || crc.get<uint64_t>() > 0xffffffffu)
    fail(ACRE_ERR_STORE, pot + ": missing or corrupt (checksum mismatch)");
  const int64_t want = int64_t(crc.get<uint64_t>());
  auto snapshot = std::make_unique<Snapshot>();
  snapshot->arrays = read_npz(pot, &want);
  return snapshot;
}

std::unique_ptr<Snapshot> Store::load_checkpoint() const {
  const std::string path = dir_ + "/resume.npz";
  if ((info_.contains("complete") && info_["complete"] == true) || !regular_file(path)) return nullptr;
  auto snapshot = std::make_unique<Snapshot>();
  try {
    snapshot->arrays = read_npz(path);
  } catch (const Error &) {
    return nullptr;  // a damaged checkpoint: start again, nothing is lost but time
  }
  auto it = std::find_if(snapshot->arrays.begin(), snapshot->arrays.end(),
                         [](const NamedArray &a) { return a.name == "info"; });
  if (it == snapshot->arrays.end() || it->dtype != ACRE_DTYPE_UINT8) return nullptr;
  const ojson info = ojson::parse(it->data.begin(), it->data.end(), nullptr, false);
  snapshot->arrays.erase(it);
  if (!info.is_object() || !info.contains("spans") || !info["spans"].is_number_integer()) return nullptr;
  const int64_t spans = info["spans"].get<int64_t>();
  if (spans < 0 || uint64_t(spans) > span_count()) return nullptr;  // refers to spans that did not survive
  snapshot->info_json = info.dump(-1, ' ', true, ojson::error_handler_t::replace);
  return snapshot;
}

}  // namespace acre
