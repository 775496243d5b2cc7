// L2: one document's spans in a directory on flash (acre.h describes the files). The store writes
// fixed-size span records, reads back only the spans asked for (pread, each checked against its
// crc32), keeps store.json, the pot snapshot and the ingest checkpoint, and holds the writer's lock.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core.hpp"
#include "files.hpp"
#include "npz.hpp"

namespace acre {

// The store's geometry, as store.json's "meta" holds it.
struct StoreMeta {
  std::string fingerprint;
  int32_t span_tokens = 0, layers = 0, kv_heads = 0, head_dim = 0, probe_layers = 0, reps = 0;
  std::string codec;

  bool keeps_kv() const { return codec != "none"; }
  size_t kv_values() const { return size_t(layers) * kv_heads * span_tokens * head_dim; }  // per record
  size_t reps_bytes() const { return size_t(probe_layers) * kv_heads * reps * head_dim * 2; }
  size_t record_bytes() const;
};

extern const char *const CODECS[3];

// The meta from the C ABI, checked (ACRE_ERR_STORE naming what is wrong).
StoreMeta store_meta(const acre_store_meta &meta);

// store.json's text if `dir` holds a store ("{}" if unreadable), "" if nothing is there yet.
std::string peek_store(const std::string &dir);

struct Snapshot {
  std::vector<NamedArray> arrays;
  std::string info_json;  // a checkpoint's info; "" for the pot snapshot
};

class Store {
 public:
  static std::unique_ptr<Store> create(const std::string &dir, const StoreMeta &meta,
                                       const char *document_sha256);
  static std::unique_ptr<Store> open(const std::string &dir, const char *fingerprint, bool writable);

  const std::string &dir() const { return dir_; }
  const StoreMeta &meta() const { return meta_; }
  const std::string &info_json() const { return info_text_; }
  size_t span_count() const { return starts_.size(); }
  int64_t start(size_t span) const { return starts_.at(span); }
  int32_t length(size_t span) const { return lengths_.at(span); }
  uint64_t bytes_read() const { return bytes_read_; }
  uint64_t disk_bytes() const;

  void append(int64_t start, const acre_array &tokens, const acre_array *k, const acre_array *v,
              const acre_array &reps);
  void read(size_t span, int32_t *tokens, float *k, float *v);
  void read_tokens(size_t span, int32_t *tokens);
  void read_reps(size_t first, size_t count, uint16_t *out);

  void finish(const std::vector<acre_array> &arrays, const std::string &extra_json);
  void checkpoint(const std::vector<acre_array> &arrays, const std::string &info_json);
  void truncate(size_t spans);
  std::unique_ptr<Snapshot> load_pot() const;
  std::unique_ptr<Snapshot> load_checkpoint() const;  // nullptr: none, or unusable

 private:
  Store(std::string dir, StoreMeta meta, nlohmann::ordered_json info, bool writable, Fd lock);
  std::string file(const char *name) const { return dir_ + "/" + name; }
  void set_info(nlohmann::ordered_json info);
  void need_writable() const;
  void need_span(size_t span) const;
  bool verify(size_t span);  // the whole record against its crc32
  void scan();
  std::vector<uint8_t> record(size_t span, const char *why);

  std::string dir_;
  StoreMeta meta_;
  nlohmann::ordered_json info_;
  std::string info_text_;
  bool writable_;
  Fd lock_, spans_;
  std::vector<int64_t> starts_;
  std::vector<int32_t> lengths_;
  uint64_t bytes_read_ = 0;
};

}  // namespace acre
