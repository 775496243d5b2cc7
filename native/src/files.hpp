// POSIX files the way the L2 store needs them: descriptors that close themselves, whole reads and
// writes, durable syncs (sync_file), and replacing a file durably (write a temporary beside it, sync it,
// rename, sync the directory), so a crash leaves either the old file or the whole new one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace acre {

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd &&other) noexcept : fd_(other.release()) {}
  Fd &operator=(Fd &&other) noexcept;
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  ~Fd();
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  explicit operator bool() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// strerror of errno, as a message part ("No space left on device").
std::string os_error();

// Write all `n` bytes (retrying short writes and EINTR); false with errno set if that fails.
bool write_all(int fd, const void *data, size_t n);
// Read exactly `n` bytes at `offset`; the count actually read (less at the end of the file).
size_t pread_full(int fd, void *data, size_t n, uint64_t offset);

// Replace `path` by what `write` puts into a new file: it is written to `tmp_path`, synced (sync_file)
// and renamed over `path`, then the directory is synced. On failure the temporary file is removed, the
// old file stays as it was, and this throws ACRE_ERR_STORE "<path>: cannot write (<reason>); the
// store is unchanged". `write` returns false with errno set when a write fails.
void replace_durably(const std::string &path, const std::string &tmp_path,
                     const std::function<bool(int fd)> &write);

// Make what was written to `fd` durable: fsync, except on Apple systems, where fsync leaves the data in
// the drive's cache and F_FULLFSYNC is what flushes it (fsync there if F_FULLFSYNC fails, as it does on
// file systems that lack it). Returns 0, or -1 with errno set, as fsync does.
int sync_file(int fd);

// sync_file a directory, so a rename or a new file in it survives a crash (best effort).
void sync_directory(const std::string &dir);

}  // namespace acre
