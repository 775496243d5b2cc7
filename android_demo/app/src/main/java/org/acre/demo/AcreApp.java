package org.acre.demo;

import android.app.ActivityManager;
import android.content.Context;
import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.acre.core.AcreException;
import org.acre.core.Budget;
import org.acre.core.Bundle;
import org.acre.core.ByteLevelBpe;
import org.acre.core.InputException;
import org.acre.core.Policy;
import org.acre.core.Session;

/**
 * Everything the app runs, set up once off the main thread: the bundle (validated), the pot budget
 * for this device, the tokenizer, the ExecuTorch engine and the session.
 */
final class AcreApp implements AutoCloseable {
    /** Share of the app's memory class the pot may take. The pot lives in native buffers, outside
     * the Java heap the class measures; half of it leaves room for the program's own activations. */
    static final double POT_SHARE_OF_MEMORY_CLASS = 0.5;

    final Bundle bundle;
    final long budgetBytes;
    final int budgetSlots;
    final int memoryClassMb;
    final Session session;
    private final ExecuTorchEngine engine;

    private AcreApp(Bundle bundle, long budgetBytes, int budgetSlots, int memoryClassMb, ExecuTorchEngine engine,
                    Session session) {
        this.bundle = bundle;
        this.budgetBytes = budgetBytes;
        this.budgetSlots = budgetSlots;
        this.memoryClassMb = memoryClassMb;
        this.engine = engine;
        this.session = session;
    }

    /** The bundle: filesDir/bundle (adb push + run-as cp), else the app's external files dir. */
    static Path findBundle(Context context) {
        File[] places = {new File(context.getFilesDir(), "bundle"), new File(context.getExternalFilesDir(null), "bundle")};
        for (File place : places) {
            if (new File(place, Bundle.MANIFEST).isFile()) return place.toPath();
        }
        throw new InputException("no bundle found; copy one (acre-export --target android) to " + places[0]
                + " or " + places[1] + " (see android_demo/README.md)");
    }

    static AcreApp start(Context context) {
        Path root = findBundle(context);
        Bundle bundle = Bundle.open(root, !verifiedBefore(context, root));
        rememberVerified(context, root);
        int memoryClass = ((ActivityManager) context.getSystemService(Context.ACTIVITY_SERVICE)).getMemoryClass();
        long budget = (long) (memoryClass * (double) (1 << 20) * POT_SHARE_OF_MEMORY_CLASS);
        int slots = Budget.slotsForBudget(bundle.geometry, budget, bundle.kvDtype);
        if (bundle.pot > slots) {
            throw new InputException("this device's pot budget (" + (budget >> 20) + " MiB, half of its " + memoryClass
                    + " MiB memory class) holds " + slots + " slots; the bundle's pot has " + bundle.pot
                    + ". Export a bundle with --pot " + slots + " or less.");
        }
        ByteLevelBpe tokenizer = ByteLevelBpe.load(bundle.tokenizerDir().resolve("tokenizer.json"));
        ExecuTorchEngine engine = new ExecuTorchEngine(bundle);
        Session session = new Session(bundle, engine, tokenizer, Policy.named("acre"));
        return new AcreApp(bundle, budget, slots, memoryClass, engine, session);
    }

    /** Hashing a 600 MB program takes seconds: verify the checksums once per bundle (size and date). */
    private static boolean verifiedBefore(Context context, Path root) {
        try {
            Path marker = marker(context);
            return Files.isRegularFile(marker) && new String(Files.readAllBytes(marker), StandardCharsets.UTF_8)
                    .equals(identity(root));
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
        Path manifest = root.resolve(Bundle.MANIFEST);
        return root + " " + Files.size(manifest) + " " + Files.getLastModifiedTime(manifest).toMillis();
    }

    /** Where a document's L2 store lives: the app's files dir, named after the document. */
    static Path storeFor(Context context, String displayName, String uri) {
        String safe = displayName.replaceAll("[^A-Za-z0-9._-]", "_");
        String tag = Integer.toHexString(uri.hashCode());
        return new File(new File(context.getFilesDir(), "documents"), safe + "-" + tag + ".l2").toPath();
    }

    @Override
    public void close() {
        session.close();
        try {
            engine.close();
        } catch (AcreException | IllegalStateException ignored) {
            // the process is going away
        }
    }
}
