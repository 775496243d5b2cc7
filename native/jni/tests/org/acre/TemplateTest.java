package org.acre;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.Rule;
import org.junit.Test;
import org.junit.rules.TemporaryFolder;

/**
 * The chat templates the binding knows split as Python's jinja2 rendering splits them; others are
 * refused.
 */
public class TemplateTest {
  @Rule public TemporaryFolder tmp = new TemporaryFolder();

  @Test
  public void everyKnownTemplateSplitsAsPythonRendersIt() throws Exception {
    String[] known = Native.knownTemplates();
    List<String> python =
        Files.readAllLines(Fixture.DIR.resolve("templates.rendered.txt"), StandardCharsets.UTF_8);
    assertEquals(2 * known.length / 3, python.size());
    assertTrue(known.length >= 6); // SmolLM2's and the tests' ChatML
    for (int i = 0; i < known.length; i += 3) {
      assertEquals(
          "prefix of template " + i / 3,
          KnownTemplates.escape(known[i + 1]),
          python.get(2 * i / 3));
      assertEquals(
          "suffix of template " + i / 3,
          KnownTemplates.escape(known[i + 2]),
          python.get(2 * i / 3 + 1));
    }
  }

  @Test
  public void aTemplateItDoesNotKnowIsRefusedByName() throws Exception {
    Path copy = tmp.newFolder("bundle").toPath();
    for (Path file : Files.walk(Fixture.BUNDLE).toList()) {
      Path to = copy.resolve(Fixture.BUNDLE.relativize(file).toString());
      if (Files.isDirectory(file)) {
        Files.createDirectories(to);
      } else {
        Files.copy(file, to);
      }
    }
    Path template = copy.resolve("tokenizer/chat_template.jinja");
    String text = Files.readString(template, StandardCharsets.UTF_8);
    Files.writeString(
        template, text.replace("assistant", "assistanT")); // same size: opens unverified
    try (Bundle bundle = Bundle.open(copy, false)) {
      TokenizerException e = assertThrows(TokenizerException.class, () -> new Session(bundle));
      assertTrue(e.getMessage(), e.getMessage().contains("chat template"));
    }
  }
}
