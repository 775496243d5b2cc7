import Foundation

#if canImport(Darwin)
    import Darwin
#elseif canImport(Glibc)
    import Glibc
#endif

/// An exclusive advisory lock (flock) on a store's `lock` file, held by its one writer; a second
/// writer fails at once with a StoreError instead of interleaving records.
final class FileLock {
    private var descriptor: Int32

    private init(descriptor: Int32) { self.descriptor = descriptor }

    static func acquire(_ url: URL, owner: URL) throws -> FileLock {
        let fd = open(url.path, O_RDWR | O_CREAT, 0o644)
        guard fd >= 0 else { throw StoreError("\(owner.path): cannot create its lock file") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw StoreError("\(owner.path): another process is writing this document; try again when it is done")
        }
        return FileLock(descriptor: fd)
    }

    func release() {
        if descriptor >= 0 {
            close(descriptor)  // closing releases the lock
            descriptor = -1
        }
    }

    deinit { release() }
}
