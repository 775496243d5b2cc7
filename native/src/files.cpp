// Descriptors, whole reads and writes, durable syncs, and durable replacement of a file (files.hpp).
#include "files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core.hpp"

namespace acre {

Fd &Fd::operator=(Fd &&other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = other.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

std::string os_error() { return std::strerror(errno); }

bool write_all(int fd, const void *data, size_t n) {
  const auto *p = static_cast<const uint8_t *>(data);
  while (n) {
    const ssize_t got = ::write(fd, p, n);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      if (got == 0) errno = EIO;
      return false;
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

size_t pread_full(int fd, void *data, size_t n, uint64_t offset) {
  auto *p = static_cast<uint8_t *>(data);
  size_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(fd, p + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    done += static_cast<size_t>(got);
  }
  return done;
}

int sync_file(int fd) {
#ifdef __APPLE__
  if (::fcntl(fd, F_FULLFSYNC) == 0) return 0;
#endif
  return ::fsync(fd);
}

void sync_directory(const std::string &dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd) sync_file(fd.get());  // some file systems refuse a directory sync; the rename still stands
}

void replace_durably(const std::string &path, const std::string &tmp_path,
                     const std::function<bool(int fd)> &write) {
  std::string reason;
  {
    Fd fd(::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd || !write(fd.get()) || sync_file(fd.get()) != 0) reason = os_error();
    if (fd && ::close(fd.release()) != 0 && reason.empty()) reason = os_error();
  }
  if (reason.empty() && ::rename(tmp_path.c_str(), path.c_str()) != 0) reason = os_error();
  if (!reason.empty()) {
    ::unlink(tmp_path.c_str());
    fail(ACRE_ERR_STORE, path + ": cannot write (" + reason + "); the store is unchanged");
  }
  const size_t slash = path.rfind('/');
  sync_directory(slash == std::string::npos ? "." : path.substr(0, slash ? slash : 1));
}

}  // namespace acre
