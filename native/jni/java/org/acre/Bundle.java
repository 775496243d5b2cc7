package org.acre;

import java.nio.file.Path;

/**
 * An acre bundle (acre-export's output), opened and verified by the core: format and version, every
 * field a runtime reads, each listed file's presence, size and (optionally) sha256. Close it after
 * the sessions made on it.
 */
public final class Bundle implements AutoCloseable {
  private long handle;
  private final Path root;
  private int sessions;

  private Bundle(long handle, Path root) {
    this.handle = handle;
    this.root = root;
  }

  /** Opens and verifies a bundle directory, checksums included. */
  public static Bundle open(Path dir) {
    return open(dir, true);
  }

  /**
   * Opens a bundle; {@code verifyChecksums} false checks the files' sizes only (hashing a large
   * program takes seconds on a phone).
   */
  public static Bundle open(Path dir, boolean verifyChecksums) {
    return new Bundle(Native.bundleOpen(dir.toString(), verifyChecksums), dir);
  }

  public Path root() {
    return root;
  }

  /** manifest.json's text. */
  public String manifestJson() {
    return Native.bundleManifest(handle());
  }

  synchronized long handle() {
    if (handle == 0) {
      throw new IllegalStateException("the bundle is closed");
    }
    return handle;
  }

  synchronized void retain() {
    handle();
    sessions++;
  }

  synchronized void release() {
    sessions--;
  }

  /** Releases the bundle; refused while a session made on it is open. */
  @Override
  public synchronized void close() {
    if (sessions > 0) {
      throw new IllegalStateException("close the bundle's " + sessions + " open session(s) first");
    }
    Native.bundleFree(handle);
    handle = 0;
  }
}
