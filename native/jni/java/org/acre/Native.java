package org.acre;

/**
 * The JNI library libacre_jni (native/jni/acre_jni.cpp) over the core's C ABI
 * (native/include/acre.h). Handles are the addresses of core objects, owned by {@link Bundle} and
 * {@link Session}; a failed call throws the {@link AcreException} of its status.
 */
final class Native {
  /** The ABI version this binding was written against (ACRE_ABI_VERSION). */
  static final int ABI_VERSION = 7;

  static {
    System.loadLibrary("acre_jni");
    if (abiVersion() != ABI_VERSION) {
      throw new UnsatisfiedLinkError(
          "libacre_jni is of the core's ABI " + abiVersion() + ", org.acre of " + ABI_VERSION);
    }
  }

  private Native() {}

  static native int abiVersion();

  /** The chat templates the binding renders, as (template, prefix, suffix) triples, flat. */
  static native String[] knownTemplates();

  static native long bundleOpen(String dir, boolean verifyChecksums);

  static native void bundleFree(long bundle);

  static native String bundleManifest(long bundle);

  static native long sessionNew(long bundle, String policy, String switchesJson);

  static native void sessionFree(long session);

  static native String sessionFingerprint(long session);

  static native long sessionIngest(
      long session, String text, String store, boolean resume, boolean replace, Progress progress);

  static native long sessionOpenDocument(long session, String store);

  static native void sessionCloseStore(long session);

  static native long sessionDocumentTokens(long session);

  static native String sessionDocumentText(long session);

  static native int[] sessionEncode(long session, String text);

  static native String sessionDecode(long session, int[] ids, boolean skipSpecial);

  static native void sessionAsk(
      long session,
      String question,
      int maxNewTokens,
      double temperature,
      double topP,
      boolean hasSeed,
      long seed);

  static native int sessionNext(long session);

  static native int[] sessionLastPromptIds(long session);

  static native long[] sessionLastSpans(long session);

  static native long[] sessionLastSources(long session);

  static native long[] sessionProfile(long session);
}
