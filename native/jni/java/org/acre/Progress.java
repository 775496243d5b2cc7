package org.acre;

/**
 * Told after each chunk of an ingest how many of the document's tokens are done. An exception it
 * throws stops the ingest (the store keeps its last checkpoint, so ingesting again resumes there)
 * and is thrown again by {@link Session#ingest}.
 */
@FunctionalInterface
public interface Progress {
  void progress(long done, long total);
}
