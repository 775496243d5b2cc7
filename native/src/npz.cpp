// The .npz snapshot format (npz.hpp): zip entries "<name>.npy", stored, each a .npy v1.0 header
// (a Python dict literal: descr, fortran_order, shape) padded to 64 bytes and the array's bytes.
#include "npz.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <set>

#include "files.hpp"

namespace acre {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the store's files are little-endian");

constexpr uint32_t LOCAL_SIG = 0x04034b50, CENTRAL_SIG = 0x02014b50, END_SIG = 0x06054b50;
constexpr uint16_t DOS_DATE_1980 = (0 << 9) | (1 << 5) | 1;  // a fixed time: the same arrays, the same file
constexpr uint64_t ZIP32_LIMIT = 0xffffffffu;

uint32_t crc_of(uint32_t crc, const void *data, size_t n) {
  const auto *p = static_cast<const Bytef *>(data);
  while (n) {  // zlib takes a uInt length
    const uInt step = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    crc = static_cast<uint32_t>(::crc32(crc, p, step));
    p += step;
    n -= step;
  }
  return crc;
}

void put16(std::string &out, uint32_t v) { out.append({char(v & 0xff), char((v >> 8) & 0xff)}); }
void put32(std::string &out, uint32_t v) {
  put16(out, v & 0xffff);
  put16(out, v >> 16);
}
uint32_t get16(const uint8_t *p) { return p[0] | (p[1] << 8); }
uint32_t get32(const uint8_t *p) { return get16(p) | (static_cast<uint32_t>(get16(p + 2)) << 16); }
uint64_t get64(const uint8_t *p) { return get32(p) | (static_cast<uint64_t>(get32(p + 4)) << 32); }

// numpy's descr of each dtype the store keeps.
const char *descr_of(acre_dtype dtype) {
  switch (dtype) {
    case ACRE_DTYPE_FLOAT32: return "<f4";
    case ACRE_DTYPE_FLOAT16: return "<f2";
    case ACRE_DTYPE_INT64: return "<i8";
    case ACRE_DTYPE_INT32: return "<i4";
    case ACRE_DTYPE_INT8: return "|i1";
    case ACRE_DTYPE_UINT8: return "|u1";
    case ACRE_DTYPE_BOOL: return "|b1";
    default: return nullptr;
  }
}

acre_dtype dtype_of_descr(const std::string &descr) {
  for (acre_dtype d : {ACRE_DTYPE_FLOAT32, ACRE_DTYPE_FLOAT16, ACRE_DTYPE_INT64, ACRE_DTYPE_INT32,
                       ACRE_DTYPE_INT8, ACRE_DTYPE_UINT8, ACRE_DTYPE_BOOL}) {
    const std::string want = descr_of(d);
    if (descr == want || (want[0] == '|' && descr == "<" + want.substr(1))) return d;
  }
  return ACRE_DTYPE_INVALID;
}

// The .npy header of an array: magic, version 1.0, length, and the dict padded to 64 bytes.
std::string npy_header(const acre_array &array) {
  std::string shape = "(";
  for (int32_t i = 0; i < array.info.rank; ++i) shape += (i ? ", " : "") + std::to_string(array.info.dims[i]);
  shape += array.info.rank == 1 ? ",)" : ")";
  std::string dict = std::string("{'descr': '") + descr_of(array.info.dtype) +
                     "', 'fortran_order': False, 'shape': " + shape + ", }";
  const size_t total = (10 + dict.size() + 1 + 63) / 64 * 64;
  dict.append(total - 10 - dict.size() - 1, ' ');
  dict += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  put16(out, static_cast<uint32_t>(dict.size()));
  return out + dict;
}

// The dict of a .npy header, parsed strictly: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
struct NpyHeader {
  std::string descr;
  bool fortran = true;
  std::vector<int64_t> dims;
  bool has_shape = false;
};

class DictParser {
 public:
  explicit DictParser(const std::string &text) : s_(text) {}

  bool parse(NpyHeader &out) {
    if (!eat('{')) return false;
    while (true) {
      skip();
      if (eat('}')) return true;
      std::string key;
      if (!quoted(key) || !eat(':')) return false;
      if (key == "descr") {
        if (!quoted(out.descr)) return false;
      } else if (key == "fortran_order") {
        if (word("False")) {
          out.fortran = false;
        } else if (!word("True")) {
          return false;
        }
      } else if (key == "shape") {
        if (!tuple(out.dims)) return false;
        out.has_shape = true;
      } else {
        return false;
      }
      if (!eat(',')) return eat('}');
    }
  }

 private:
  void skip() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n')) ++i_;
  }
  bool eat(char c) {
    skip();
    if (i_ < s_.size() && s_[i_] == c) return ++i_, true;
    return false;
  }
  bool word(const char *w) {
    skip();
    const size_t n = std::strlen(w);
    if (s_.compare(i_, n, w) != 0) return false;
    i_ += n;
    return true;
  }
  bool quoted(std::string &out) {
    if (!eat('\'')) return false;
    const size_t end = s_.find('\'', i_);
    if (end == std::string::npos) return false;
    out = s_.substr(i_, end - i_);
    i_ = end + 1;
    return true;
  }
  bool tuple(std::vector<int64_t> &dims) {
    if (!eat('(')) return false;
    while (true) {
      if (eat(')')) return true;
      skip();
      int64_t v = 0;
      size_t digits = 0;
      while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9' && digits < 18)
        v = v * 10 + (s_[i_++] - '0'), ++digits;
      if (!digits || dims.size() == ACRE_MAX_DIMS) return false;
      dims.push_back(v);
      if (!eat(',')) return eat(')');
    }
  }

  const std::string &s_;
  size_t i_ = 0;
};

struct Entry {
  std::string name;
  uint32_t crc = 0;
  uint64_t size = 0, local = 0;
};

// The central directory's entries (sizes and offsets from a zip64 extra field where they overflow).
std::vector<Entry> central_directory(int fd, uint64_t file_size, const std::string &path) {
  const auto bad = [&](const std::string &why) {
    fail(ACRE_ERR_STORE, path + ": not a valid snapshot (" + why + ")");
  };
  const uint64_t tail_size = std::min<uint64_t>(file_size, 22 + 0xffff);
  std::vector<uint8_t> tail(tail_size);
  if (pread_full(fd, tail.data(), tail.size(), file_size - tail_size) != tail.size())
    bad("cannot read its end");
  size_t end = std::string::npos;
  for (size_t i = tail_size >= 22 ? tail_size - 22 + 1 : 0; i-- > 0;) {
    if (get32(&tail[i]) == END_SIG && i + 22 + get16(&tail[i + 20]) == tail_size) {
      end = i;
      break;
    }
  }
  if (end == std::string::npos) bad("no zip end record");
  const uint32_t count = get16(&tail[end + 10]), dir_size = get32(&tail[end + 12]),
                 dir_at = get32(&tail[end + 16]);
  if (uint64_t(dir_at) + dir_size > file_size - tail_size + end) bad("central directory out of bounds");
  std::vector<uint8_t> dir(dir_size);
  if (pread_full(fd, dir.data(), dir.size(), dir_at) != dir.size()) bad("cannot read its directory");
  std::vector<Entry> entries;
  size_t at = 0;
  for (uint32_t e = 0; e < count; ++e) {
    if (at + 46 > dir.size() || get32(&dir[at]) != CENTRAL_SIG) bad("damaged central directory");
    const uint8_t *h = &dir[at];
    const uint32_t flags = get16(h + 8), method = get16(h + 10), name_len = get16(h + 28),
                   extra_len = get16(h + 30), comment_len = get16(h + 32);
    if (at + 46 + name_len + extra_len + comment_len > dir.size()) bad("damaged central directory");
    if (method != 0 || (flags & 1)) bad("a compressed or encrypted entry");
    Entry entry;
    entry.name.assign(reinterpret_cast<const char *>(h + 46), name_len);
    entry.crc = get32(h + 16);
    uint64_t csize = get32(h + 20), usize = get32(h + 24), local = get32(h + 42);
    for (size_t x = 46 + name_len;
         x + 4 <= 46 + name_len + extra_len;) {  // zip64: the overflowed fields, in order
      const uint32_t id = get16(h + x), len = get16(h + x + 2);
      if (x + 4 + len > 46 + name_len + extra_len) bad("damaged extra field");
      if (id == 1) {
        size_t v = x + 4;
        for (uint64_t *field : {&usize, &csize, &local}) {
          if (*field != ZIP32_LIMIT) continue;
          if (v + 8 > x + 4 + len) bad("damaged zip64 field");
          *field = get64(h + v);
          v += 8;
        }
      }
      x += 4 + len;
    }
    if (csize != usize) bad("a compressed entry");
    entry.size = usize;
    entry.local = local;
    entries.push_back(std::move(entry));
    at += 46 + name_len + extra_len + comment_len;
  }
  return entries;
}

}  // namespace

void check_array(const acre_array &array, const std::string &what) {
  const acre_tensor_info &info = array.info;
  const auto bad = [&](const std::string &why) { fail(ACRE_ERR_INVALID_ARGUMENT, what + ": " + why); };
  if (!info.name || !*info.name) bad("an array without a name");
  for (const char *c = info.name; *c; ++c)
    if (!(std::isalnum(static_cast<unsigned char>(*c)) || *c == '_'))
      bad(std::string("array name '") + info.name + "' (letters, digits and _ only)");
  const std::string name = info.name;
  if (!descr_of(info.dtype))
    bad(name + " has a dtype the store does not keep (" + acre_dtype_name(info.dtype) + ")");
  if (info.rank < 0 || info.rank > ACRE_MAX_DIMS) bad(name + " has rank " + std::to_string(info.rank));
  uint64_t count = 1;
  for (int32_t i = 0; i < info.rank; ++i) {
    if (info.dims[i] < 0) bad(name + " has a negative dimension");
    const uint64_t d = static_cast<uint64_t>(info.dims[i]);
    if (d && count > (uint64_t(1) << 40) / d) bad(name + " is too large");
    count *= d;
  }
  if (count * acre_dtype_size(info.dtype) != info.bytes)
    bad(name + ": " + std::to_string(info.bytes) + " bytes for its shape and dtype, which need " +
        std::to_string(count * acre_dtype_size(info.dtype)));
  if (info.bytes && !array.data) bad(name + " has no data");
}

uint32_t write_npz(const std::string &path, const std::vector<acre_array> &arrays) {
  std::set<std::string> names;
  for (const acre_array &a : arrays) {
    check_array(a, path);
    if (!names.insert(a.info.name).second)
      fail(ACRE_ERR_INVALID_ARGUMENT, path + ": two arrays named " + a.info.name);
  }
  uint32_t file_crc = 0;
  const auto emit = [&](int fd, const void *data, size_t n) {
    file_crc = crc_of(file_crc, data, n);
    return write_all(fd, data, n);
  };
  const std::string tmp = path.substr(0, path.rfind('.')) + ".tmp.npz";  // pot.npz -> pot.tmp.npz
  replace_durably(path, tmp, [&](int fd) {
    std::string central;
    uint64_t offset = 0;
    for (const acre_array &a : arrays) {
      const std::string name = std::string(a.info.name) + ".npy", header = npy_header(a);
      const uint64_t size = header.size() + a.info.bytes;
      if (size >= ZIP32_LIMIT || offset >= ZIP32_LIMIT) {
        errno = EFBIG;  // this writer makes no zip64 archives: a pot of 4 GB is not one of acre's
        return false;
      }
      const uint32_t crc = crc_of(crc_of(0, header.data(), header.size()), a.data, a.info.bytes);
      std::string local;
      put32(local, LOCAL_SIG), put16(local, 20), put16(local, 0), put16(local, 0), put16(local, 0);
      put16(local, DOS_DATE_1980), put32(local, crc), put32(local, uint32_t(size)),
          put32(local, uint32_t(size));
      put16(local, uint32_t(name.size())), put16(local, 0);
      local += name;
      put32(central, CENTRAL_SIG), put16(central, 20), put16(central, 20), put16(central, 0),
          put16(central, 0);
      put16(central, 0), put16(central, DOS_DATE_1980), put32(central, crc), put32(central, uint32_t(size));
      put32(central, uint32_t(size)), put16(central, uint32_t(name.size())), put16(central, 0);
      put16(central, 0), put16(central, 0), put16(central, 0), put32(central, 0),
          put32(central, uint32_t(offset));
      central += name;
      if (!emit(fd, local.data(), local.size()) || !emit(fd, header.data(), header.size()) ||
          !emit(fd, a.data, a.info.bytes))
        return false;
      offset += local.size() + size;
    }
    if (offset >= ZIP32_LIMIT) {
      errno = EFBIG;
      return false;
    }
    std::string end;
    put32(end, END_SIG), put16(end, 0), put16(end, 0), put16(end, uint32_t(arrays.size()));
    put16(end, uint32_t(arrays.size())), put32(end, uint32_t(central.size())), put32(end, uint32_t(offset));
    put16(end, 0);
    return emit(fd, central.data(), central.size()) && emit(fd, end.data(), end.size());
  });
  return file_crc;
}

std::vector<NamedArray> read_npz(const std::string &path, const int64_t *file_crc) {
  const auto bad = [&](const std::string &why) {
    fail(ACRE_ERR_STORE, path + ": not a valid snapshot (" + why + ")");
  };
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) fail(ACRE_ERR_STORE, path + ": cannot be read (" + os_error() + ")");
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail(ACRE_ERR_STORE, path + ": cannot be read (" + os_error() + ")");
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_crc) {
    uint32_t crc = 0;
    std::vector<uint8_t> block(1 << 20);
    for (uint64_t at = 0; at < file_size;) {
      const size_t got =
          pread_full(fd.get(), block.data(), std::min<uint64_t>(block.size(), file_size - at), at);
      if (!got) break;
      crc = crc_of(crc, block.data(), got);
      at += got;
    }
    if (crc != *file_crc) fail(ACRE_ERR_STORE, path + ": missing or corrupt (checksum mismatch)");
  }
  std::vector<NamedArray> out;
  std::set<std::string> names;
  for (const Entry &e : central_directory(fd.get(), file_size, path)) {
    if (e.name.size() <= 4 || e.name.compare(e.name.size() - 4, 4, ".npy") != 0)
      bad(e.name + " is not an array");
    uint8_t local[30];
    if (e.local + 30 > file_size || pread_full(fd.get(), local, 30, e.local) != 30 ||
        get32(local) != LOCAL_SIG)
      bad(e.name + ": damaged local header");
    const uint64_t at = e.local + 30 + get16(local + 26) + get16(local + 28);
    if (at > file_size || e.size > file_size - at || e.size < 10) bad(e.name + ": out of bounds");
    uint8_t lead[12];
    if (pread_full(fd.get(), lead, 10, at) != 10 || std::memcmp(lead, "\x93NUMPY", 6) != 0)
      bad(e.name + ": not a .npy array");
    uint64_t header_len = get16(lead + 8), header_at = at + 10;
    if (lead[6] != 1) {  // versions 2 and 3: a 4-byte header length
      if (e.size < 12 || pread_full(fd.get(), lead + 10, 2, at + 10) != 2) bad(e.name + ": not a .npy array");
      header_len = get32(lead + 8), header_at = at + 12;
    }
    if (header_at - at + header_len > e.size) bad(e.name + ": header out of bounds");
    std::string text(header_len, '\0');
    if (pread_full(fd.get(), text.data(), header_len, header_at) != header_len) bad(e.name + ": truncated");
    NpyHeader h;
    if (!DictParser(text).parse(h) || !h.has_shape || h.fortran) bad(e.name + ": unsupported .npy header");
    NamedArray array;
    array.name = e.name.substr(0, e.name.size() - 4);
    array.dtype = dtype_of_descr(h.descr);
    if (array.dtype == ACRE_DTYPE_INVALID) bad(e.name + ": dtype " + h.descr + " is not one the store keeps");
    array.dims = h.dims;
    uint64_t count = 1;
    for (int64_t d : h.dims) {
      if (d && count > (uint64_t(1) << 40) / uint64_t(d)) bad(e.name + ": too large");
      count *= uint64_t(d);
    }
    const uint64_t data_at = header_at + header_len, data_bytes = at + e.size - data_at;
    if (count * acre_dtype_size(array.dtype) != data_bytes) bad(e.name + ": data does not match its shape");
    array.data.resize(data_bytes);
    if (pread_full(fd.get(), array.data.data(), data_bytes, data_at) != data_bytes)
      bad(e.name + ": truncated");
    uint32_t crc = crc_of(crc_of(0, lead, header_at - at), text.data(), text.size());
    if (crc_of(crc, array.data.data(), data_bytes) != e.crc) bad(e.name + ": crc32 mismatch");
    if (!names.insert(array.name).second) bad("two arrays named " + array.name);
    out.push_back(std::move(array));
  }
  return out;
}

}  // namespace acre
