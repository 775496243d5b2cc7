// numpy's .npz, the L2 store's snapshot format (pot.npz, resume.npz): a zip of .npy arrays, stored
// (not deflated), little-endian, C order. The core writes it and reads it, and reads what np.savez
// and the former JVM port wrote before (zip64 extra fields included).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core.hpp"

namespace acre {

// One array read from a snapshot; it owns its data.
struct NamedArray {
  std::string name;
  acre_dtype dtype = ACRE_DTYPE_INVALID;
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

// Check an array given through the C ABI (name, dtype, dims, bytes, data); `what` names it.
void check_array(const acre_array &array, const std::string &what);

// Write `arrays` as an .npz at `path` (through a temporary file, fsync and rename: either the old file
// or the whole new one is there). Returns the crc32 of the file written. Failures are ACRE_ERR_STORE
// naming `path`.
uint32_t write_npz(const std::string &path, const std::vector<acre_array> &arrays);

// Read every array of the .npz at `path`, each checked against its crc32. With `file_crc` set, the
// whole file must have that crc32 first. Failures are ACRE_ERR_STORE naming `path`.
std::vector<NamedArray> read_npz(const std::string &path, const int64_t *file_crc = nullptr);

}  // namespace acre
