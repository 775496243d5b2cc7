// Fuzz target: the pot snapshot, pot.npz (npz.cpp) as the L2 store reads it back (l2.cpp: load_pot, and
// load_checkpoint for resume.npz, the same format with an info array), then put back into a pot
// (pot.cpp: restore). Two stores are made by the core per process: a finished one, whose store.json
// gets the input's crc32 as pot_crc32 (so the fuzzer gets past the file checksum), and an unfinished
// one with two spans. Each gets the input as it is, and again with every stored entry's crc32 made
// right (so it reaches what the entry checksums guard: the arrays, and the pot's checks of them).
// Refusals: ACRE_ERR_STORE from load_pot; no checkpoint (NULL) from load_checkpoint; and
// ACRE_ERR_INVALID_ARGUMENT from restore, into a float32 and a float16 pot of L 2, Hkv 2, P 16, D 4.
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz.hpp"

namespace {

using test::array;
using ojson = nlohmann::ordered_json;

constexpr int32_t L = 2, H = 2, P = 16, D = 4, S = 4;

uint32_t get16(const uint8_t *p) { return p[0] | (p[1] << 8); }
uint32_t get32(const uint8_t *p) { return get16(p) | (get16(p + 2) << 16); }
void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}

// The input with each entry's crc32 (central directory and local header) set to its data's, where the
// zip's structure can be followed; what cannot is left as it is.
std::string with_crcs(const uint8_t *data, size_t size) {
  std::string out(reinterpret_cast<const char *>(data), size);
  auto *z = reinterpret_cast<uint8_t *>(out.data());
  size_t end = SIZE_MAX;
  for (size_t i = size >= 22 ? size - 22 + 1 : 0; i-- > 0 && size - i <= 22 + 0xffff;)
    if (get32(z + i) == 0x06054b50 && i + 22 + get16(z + i + 20) == size) {
      end = i;
      break;
    }
  if (end == SIZE_MAX) return out;
  const uint64_t count = get16(z + end + 10), dir_size = get32(z + end + 12), dir_at = get32(z + end + 16);
  if (dir_at + dir_size > end) return out;
  for (uint64_t e = 0, at = dir_at; e < count && at + 46 <= dir_at + dir_size; ++e) {
    uint8_t *h = z + at;
    if (get32(h) != 0x02014b50) break;
    const uint64_t csize = get32(h + 20), local = get32(h + 42);
    at += 46 + get16(h + 28) + get16(h + 30) + get16(h + 32);
    if (local + 30 > size || get32(z + local) != 0x04034b50) continue;
    const uint64_t begin = local + 30 + get16(z + local + 26) + get16(z + local + 28);
    if (begin > size || csize > size - begin) continue;
    const auto crc = uint32_t(::crc32(0, z + begin, uInt(csize)));
    put32(h + 16, crc);
    put32(z + local + 14, crc);
  }
  return out;
}

struct Setup {
  fuzz::Scratch scratch{"pot"};
  std::string finished, unfinished;  // the two stores' directories
  ojson finished_info;               // the finished store's store.json
  acre_pot *pots[2] = {};            // float32, float16

  Setup() {
    const double inv_freq[] = {1.0, 0.01};
    fuzz::expect(acre_pot_new(L, H, P, D, ACRE_DTYPE_FLOAT32, inv_freq, 2, &pots[0]), {}, "acre_pot_new");
    fuzz::expect(acre_pot_new(L, H, P, D, ACRE_DTYPE_FLOAT16, inv_freq, 2, &pots[1]), {}, "acre_pot_new");
    const acre_store_meta meta{"vectors", S, L, H, D, 1, 1, "none"};
    finished = scratch.path("finished/store.json").parent_path().string();
    unfinished = scratch.path("unfinished/store.json").parent_path().string();
    std::vector<int32_t> ids{1, 2, 3, 4};
    std::vector<float> reps(size_t(H) * D, 1.0f);
    const acre_array t = array("tokens", ACRE_DTYPE_INT32, {S}, ids.data()),
                     r = array("reps", ACRE_DTYPE_FLOAT32, {1, H, 1, D}, reps.data());
    for (const std::string *dir : {&finished, &unfinished}) {
      acre_store *store = nullptr;
      fuzz::expect(acre_store_create(dir->c_str(), &meta, nullptr, &store), {}, "acre_store_create");
      for (int64_t start : {0, S})
        fuzz::expect(acre_store_append(store, start, &t, nullptr, nullptr, &r), {}, "acre_store_append");
      if (dir == &finished) {
        acre_array arrays[ACRE_POT_ARRAYS];
        for (size_t i = 0; i < ACRE_POT_ARRAYS; ++i)
          fuzz::expect(acre_pot_array(pots[0], i, &arrays[i]), {}, "acre_pot_array");
        fuzz::expect(acre_store_finish(store, arrays, ACRE_POT_ARRAYS, "{}"), {}, "acre_store_finish");
        finished_info = ojson::parse(acre_store_info_json(store));
      }
      acre_store_free(store);
    }
  }
  ~Setup() {
    for (acre_pot *pot : pots) acre_pot_free(pot);
  }
};

// A snapshot's arrays as the C ABI hands them out, each consistent with its shape, put back into both pots.
void restore(const acre_snapshot *snapshot, acre_pot *const pots[2]) {
  std::vector<acre_array> arrays(acre_snapshot_count(snapshot));
  for (size_t i = 0; i < arrays.size(); ++i) {
    fuzz::expect(acre_snapshot_array(snapshot, i, &arrays[i]), {}, "acre_snapshot_array");
    const acre_tensor_info &info = arrays[i].info;
    size_t count = 1;
    for (int32_t d = 0; d < info.rank; ++d) count *= size_t(info.dims[d]);
    if (info.rank < 0 || info.rank > ACRE_MAX_DIMS || count * acre_dtype_size(info.dtype) != info.bytes ||
        (info.bytes && !arrays[i].data))
      fuzz::finding(std::string("snapshot array ") + info.name + " does not match its shape");
    uint8_t sum = 0;  // every byte read, so a short buffer shows under ASan
    for (size_t b = 0; b < info.bytes; ++b) sum ^= static_cast<const uint8_t *>(arrays[i].data)[b];
    (void)sum;
  }
  for (int p = 0; p < 2; ++p)
    fuzz::expect(acre_pot_restore(pots[p], arrays.data(), arrays.size()), {ACRE_ERR_INVALID_ARGUMENT},
                 "acre_pot_restore");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static Setup setup;
  const std::string raw(reinterpret_cast<const char *>(data), size), fixed = with_crcs(data, size);
  for (const std::string *npz : {&raw, &fixed}) {
    if (npz == &fixed && fixed == raw) break;
    const auto *bytes = reinterpret_cast<const uint8_t *>(npz->data());

    // pot.npz of a finished store
    fuzz::write_file(setup.finished + "/pot.npz", *npz);
    ojson info = setup.finished_info;
    info["pot_crc32"] = uint32_t(::crc32(0, bytes, uInt(npz->size())));
    fuzz::write_file(setup.finished + "/store.json", info.dump(2) + "\n");
    acre_store *store = nullptr;
    fuzz::expect(acre_store_open(setup.finished.c_str(), nullptr, 0, &store), {}, "acre_store_open");
    acre_snapshot *snapshot = nullptr;
    if (fuzz::expect(acre_store_load_pot(store, &snapshot), {ACRE_ERR_STORE}, "acre_store_load_pot")) {
      if (!snapshot) fuzz::finding("acre_store_load_pot gave no snapshot");
      if (*acre_snapshot_info_json(snapshot)) fuzz::finding("a pot snapshot with a checkpoint's info");
      restore(snapshot, setup.pots);
      acre_snapshot_free(snapshot);
    }
    acre_store_free(store);

    // resume.npz of an unfinished one
    fuzz::write_file(setup.unfinished + "/resume.npz", *npz);
    fuzz::expect(acre_store_open(setup.unfinished.c_str(), nullptr, 0, &store), {}, "acre_store_open");
    snapshot = nullptr;
    fuzz::expect(acre_store_load_checkpoint(store, &snapshot), {}, "acre_store_load_checkpoint");
    if (snapshot) {
      const ojson saved = ojson::parse(acre_snapshot_info_json(snapshot), nullptr, false);
      if (!saved.is_object() || !saved.contains("spans") || !saved["spans"].is_number_integer())
        fuzz::finding("a checkpoint whose info is not a JSON object with spans");
      restore(snapshot, setup.pots);
      acre_snapshot_free(snapshot);
    }
    acre_store_free(store);
  }
  return 0;
}
