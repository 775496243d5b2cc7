package org.acre.demo;

import android.app.Activity;
import android.content.Intent;
import android.database.Cursor;
import android.net.Uri;
import android.os.Bundle;
import android.os.Debug;
import android.os.Handler;
import android.os.Looper;
import android.provider.OpenableColumns;
import android.view.View;
import android.view.inputmethod.EditorInfo;
import android.widget.Button;
import android.widget.EditText;
import android.widget.ProgressBar;
import android.widget.TextView;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import org.acre.Decoding;
import org.acre.Session;

/**
 * Pick a document, ingest it (progress bar), ask questions (the answer streams in), and see the
 * memory profile: pot bytes (fixed RAM), L2 bytes on flash, bytes read for the last question. All
 * runtime work happens on one worker thread: the session is not thread-safe.
 */
public class MainActivity extends Activity {
  private static final int PICK_DOCUMENT = 1;
  private static final int MAX_NEW_TOKENS = 200;

  private final ExecutorService worker = Executors.newSingleThreadExecutor();
  private final Handler ui = new Handler(Looper.getMainLooper());
  private AcreApp app;
  private TextView status;
  private TextView answer;
  private TextView profile;
  private ProgressBar progress;
  private EditText question;
  private Button open;
  private Button ask;
  private boolean documentReady;

  @Override
  protected void onCreate(Bundle state) {
    super.onCreate(state);
    setContentView(R.layout.activity_main);
    status = findViewById(R.id.status);
    answer = findViewById(R.id.answer);
    profile = findViewById(R.id.profile);
    progress = findViewById(R.id.progress);
    question = findViewById(R.id.question);
    open = findViewById(R.id.open);
    ask = findViewById(R.id.ask);
    open.setOnClickListener(v -> pickDocument());
    ask.setOnClickListener(v -> ask());
    question.setOnEditorActionListener(
        (v, action, event) -> {
          if (action != EditorInfo.IME_ACTION_SEND) return false;
          ask();
          return true;
        });
    status.setText("Loading the bundle…");
    worker.execute(
        () -> {
          try {
            AcreApp started = AcreApp.start(getApplicationContext());
            ui.post(
                () -> {
                  app = started;
                  status.setText(
                      String.format(
                          Locale.ROOT,
                          "Bundle %s: %d-slot pot. Open a document.",
                          started.bundle.root().getFileName(),
                          started.session.profile().potSlots()));
                  open.setEnabled(true);
                  showProfile();
                });
          } catch (RuntimeException
              | LinkageError e) { // AcreException, or the native library missing
            fail(e);
          }
        });
  }

  private void pickDocument() {
    Intent intent = new Intent(Intent.ACTION_OPEN_DOCUMENT);
    intent.addCategory(Intent.CATEGORY_OPENABLE);
    intent.setType("text/*");
    startActivityForResult(intent, PICK_DOCUMENT);
  }

  @Override
  protected void onActivityResult(int request, int result, Intent data) {
    super.onActivityResult(request, result, data);
    if (request != PICK_DOCUMENT || result != RESULT_OK || data == null || data.getData() == null)
      return;
    Uri uri = data.getData();
    String name = displayName(uri);
    Path store = AcreApp.storeFor(this, name, uri.toString());
    setBusy(true);
    documentReady = false;
    answer.setText("");
    progress.setProgress(0);
    progress.setVisibility(View.VISIBLE);
    status.setText("Reading " + name + "…");
    worker.execute(
        () -> {
          try {
            String text = readUtf8(uri);
            ui.post(() -> status.setText("Ingesting " + name + "…"));
            long started = System.nanoTime();
            long tokens =
                app.session.ingest(
                    text,
                    store,
                    (done, total) ->
                        ui.post(
                            () -> {
                              progress.setMax((int) total);
                              progress.setProgress((int) done);
                            }),
                    false);
            double seconds = (System.nanoTime() - started) / 1e9;
            ui.post(
                () -> {
                  documentReady = true;
                  progress.setVisibility(View.INVISIBLE);
                  status.setText(
                      String.format(
                          Locale.ROOT,
                          "%s: %,d tokens in %.1f s. Ask a question.",
                          name,
                          tokens,
                          seconds));
                  setBusy(false);
                  showProfile();
                });
          } catch (RuntimeException | IOException e) {
            fail(e);
          }
        });
  }

  private void ask() {
    String q = question.getText().toString();
    if (!documentReady || q.trim().isEmpty()) return;
    setBusy(true);
    answer.setText("");
    status.setText("Q: " + q);
    worker.execute(
        () -> {
          try {
            long started = System.nanoTime();
            long[] first = {0};
            app.session.ask(
                q,
                Decoding.greedy(MAX_NEW_TOKENS),
                piece -> {
                  if (first[0] == 0) first[0] = System.nanoTime();
                  ui.post(() -> answer.append(piece));
                });
            double toFirst = first[0] == 0 ? 0 : (first[0] - started) / 1e9;
            int sources = app.session.lastSources().size(); // the passages it refilled
            ui.post(
                () -> {
                  status.setText(
                      String.format(
                          Locale.ROOT,
                          "Q: %s  (first token after %.2f s, %d sources)",
                          q,
                          toFirst,
                          sources));
                  setBusy(false);
                  showProfile();
                });
          } catch (RuntimeException e) {
            fail(e);
          }
        });
  }

  private void showProfile() {
    if (app == null) return;
    Session.Profile p = app.session.profile();
    profile.setText(
        String.format(
            Locale.ROOT,
            "pot (RAM, fixed)      %,d slots x %,d B = %s\n"
                + "pot budget            %s (half of the %d MiB memory class)\n"
                + "span index (RAM)      %s\n"
                + "activations (plan)    %s\n"
                + "document              %,d tokens\n"
                + "L2 on flash           %s\n"
                + "L2 read, last answer  %,d B (%d spans)\n"
                + "native heap           %s",
            p.potSlots(),
            p.potBytes() / p.potSlots(),
            mib(p.potBytes()),
            mib(app.budgetBytes),
            app.memoryClassMb,
            mib(p.indexBytes()),
            mib(p.plannedBytes()),
            p.documentTokens(),
            mib(p.l2DiskBytes()),
            p.l2BytesReadLastQuestion(),
            p.spansRefilledLastQuestion(),
            mib(Debug.getNativeHeapAllocatedSize())));
  }

  private static String mib(long bytes) {
    return String.format(Locale.ROOT, "%,.1f MiB", bytes / 1048576.0);
  }

  private void setBusy(boolean busy) {
    open.setEnabled(!busy && app != null);
    ask.setEnabled(!busy && documentReady);
  }

  private void fail(Throwable e) {
    ui.post(
        () -> {
          progress.setVisibility(View.INVISIBLE);
          status.setText("Error: " + e.getMessage());
          setBusy(false);
        });
  }

  private String displayName(Uri uri) {
    try (Cursor c =
        getContentResolver()
            .query(uri, new String[] {OpenableColumns.DISPLAY_NAME}, null, null, null)) {
      if (c != null && c.moveToFirst() && !c.isNull(0)) return c.getString(0);
    }
    return "document";
  }

  /** The document's text; not UTF-8 is an error, as in the Python CLI. */
  private String readUtf8(Uri uri) throws IOException {
    ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    try (InputStream in = getContentResolver().openInputStream(uri)) {
      if (in == null) throw new IOException("cannot open " + uri);
      byte[] block = new byte[1 << 16];
      for (int n; (n = in.read(block)) > 0; ) bytes.write(block, 0, n);
    }
    try {
      return StandardCharsets.UTF_8
          .newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(bytes.toByteArray()))
          .toString();
    } catch (CharacterCodingException e) {
      throw new IOException("the document is not UTF-8 text (" + e.getMessage() + ")", e);
    }
  }

  @Override
  protected void onDestroy() {
    super.onDestroy();
    worker.execute(
        () -> {
          if (app != null) app.close();
        });
    worker.shutdown();
  }
}
