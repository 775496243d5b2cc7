package org.acre;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes the chat templates libacre_jni renders, one a line (backslash, newline and carriage return
 * escaped), for make_fixture.py to render with jinja2 as the Python session does; TemplateTest then
 * holds the binding's prefix and suffix to Python's.
 */
public final class KnownTemplates {
  private KnownTemplates() {}

  static String escape(String s) {
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r");
  }

  public static void main(String[] args) throws IOException {
    String[] known = Native.knownTemplates();
    List<String> lines = new ArrayList<>();
    for (int i = 0; i < known.length; i += 3) {
      lines.add(escape(known[i]));
    }
    Files.write(Path.of(args[0]), lines, StandardCharsets.UTF_8);
  }
}
