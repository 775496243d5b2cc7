package org.acre.demo;

import android.app.ActivityManager;
import android.content.Context;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.acre.Bundle;
import org.acre.InputException;
import org.acre.Session;

/**
 * Everything the app runs, set up once off the main thread: the bundle (verified by the core), and
 * the session on it (the core's pot, policy and ExecuTorch engine, through libacre_jni).
 */
final class AcreApp implements AutoCloseable {
  /**
   * Share of the app's memory class the pot may take. The pot lives in native memory, outside the
   * Java heap the class measures; half of it leaves room for the program's own activations.
   */
  static final double POT_SHARE_OF_MEMORY_CLASS = 0.5;

  final Bundle bundle;
  final Session session;
  final long budgetBytes;
  final int memoryClassMb;

  private AcreApp(Bundle bundle, Session session, long budgetBytes, int memoryClassMb) {
    this.bundle = bundle;
    this.session = session;
    this.budgetBytes = budgetBytes;
    this.memoryClassMb = memoryClassMb;
  }

  /** The bundle: filesDir/bundle (adb push + run-as cp), else the app's external files dir. */
  static Path findBundle(Context context) {
    File[] places = {
      new File(context.getFilesDir(), "bundle"),
      new File(context.getExternalFilesDir(null), "bundle")
    };
    for (File place : places) {
      if (new File(place, "manifest.json").isFile()) {
        return place.toPath();
      }
    }
    throw new InputException(
        "no bundle found; copy one (acre-export --target android) to "
            + places[0]
            + " or "
            + places[1]
            + " (see android_demo/README.md)");
  }

  static AcreApp start(Context context) {
    Path root = findBundle(context);
    Bundle bundle = Bundle.open(root, !verifiedBefore(context, root));
    rememberVerified(context, root);
    Session session;
    try {
      session = new Session(bundle);
    } catch (RuntimeException e) {
      bundle.close();
      throw e;
    }
    int memoryClass =
        ((ActivityManager) context.getSystemService(Context.ACTIVITY_SERVICE)).getMemoryClass();
    long budget = (long) (memoryClass * (double) (1 << 20) * POT_SHARE_OF_MEMORY_CLASS);
    Session.Profile p = session.profile();
    if (p.potBytes() > budget) { // the pot's size is fixed at export
      long slots = budget / (p.potBytes() / p.potSlots());
      session.close();
      bundle.close();
      throw new InputException(
          "this device's pot budget ("
              + (budget >> 20)
              + " MiB, half of its "
              + memoryClass
              + " MiB memory class) holds about "
              + slots
              + " slots; the bundle's pot has "
              + p.potSlots()
              + ". Export a bundle with --pot "
              + slots
              + " or less.");
    }
    return new AcreApp(bundle, session, budget, memoryClass);
  }

  /**
   * Hashing a large program takes seconds: verify the checksums once per bundle (size and date).
   */
  private static boolean verifiedBefore(Context context, Path root) {
    try {
      Path marker = marker(context);
      return Files.isRegularFile(marker)
          && new String(Files.readAllBytes(marker), StandardCharsets.UTF_8).equals(identity(root));
    } catch (IOException e) {
      return false;
    }
  }

  private static void rememberVerified(Context context, Path root) {
    try {
      Files.write(marker(context), identity(root).getBytes(StandardCharsets.UTF_8));
    } catch (IOException ignored) {
      // verified again next time
    }
  }

  private static Path marker(Context context) {
    return new File(context.getFilesDir(), "bundle-verified").toPath();
  }

  private static String identity(Path root) throws IOException {
    Path manifest = root.resolve("manifest.json");
    return root + " " + Files.size(manifest) + " " + Files.getLastModifiedTime(manifest).toMillis();
  }

  /** Where a document's L2 store lives: the app's files dir, named after the document. */
  static Path storeFor(Context context, String displayName, String uri) {
    String safe = displayName.replaceAll("[^A-Za-z0-9._-]", "_");
    String tag = Integer.toHexString(uri.hashCode());
    return new File(new File(context.getFilesDir(), "documents"), safe + "-" + tag + ".l2")
        .toPath();
  }

  @Override
  public void close() {
    session.close();
    bundle.close();
  }
}
