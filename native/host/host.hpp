// What a host of the core does besides calling it, over acre.h only, for the hosts without Python (the
// JNI library and the command-line runner, as llama.cpp's common/ sits beside llama.h): a session with
// what it borrows, the chat template's single user turn, the tokenizer's special ids, the document's and
// the question's prompts (the document's with character offsets), and the sources of the spans a
// question refilled. acre/runtime/session.py, tokenizer.py and sources.py do the same in Python (the chat
// template with jinja2); the JVM tests and tests/test_native_cli.py hold them to the same ids.
#ifndef ACRE_HOST_HPP
#define ACRE_HOST_HPP

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "acre.h"

namespace acre_host {

// A refusal of the host's own, as a status and a message (the JNI layer throws it as the core's).
struct Error : std::runtime_error {
  acre_status status;
  Error(acre_status s, const std::string &message) : std::runtime_error(message), status(s) {}
};

// Throws the core's last error when status is not ACRE_OK.
void check(acre_status status);

// The text before and after the user's message in the chat template's first user turn, rendered as
// acre/runtime/session.py's split_chat_template renders it: "" and "\n" without a template; the ChatML
// templates this table knows (the built-in SmolLM2's and the tests' tiny model's) by their exact text;
// any other template is refused (ACRE_ERR_TOKENIZER): the JVM has no jinja2.
std::pair<std::string, std::string> split_chat_template(const std::string *chat_template);

// The templates split_chat_template knows: (template text, prefix, suffix) each (jni/test.sh holds every one
// to Python's rendering).
std::vector<std::string> known_templates();

struct Prompting {
  std::string prefix, suffix;
  std::vector<int32_t> template_ids;  // the prompt's template ids and the special ids, sorted, unique
  int32_t bos = -1;                   // the tokenizer's bos token id, -1 if none
};

// The bundle's chat template and special tokens (its tokenizer dir: chat_template.jinja or
// tokenizer_config.json's chat_template; the named special tokens and the additional ones).
Prompting prompting(const acre_bundle *bundle, const acre_tokenizer *tokenizer);

std::vector<int32_t> encode(const acre_tokenizer *tokenizer, const std::string &text);
// Ids of the text and each id's code point range [first, end) in it (flat), as Python's str indexes.
std::vector<int32_t> encode_offsets(const acre_tokenizer *tokenizer, const std::string &text,
                                    std::vector<int32_t> &offsets);
std::string decode(const acre_tokenizer *tokenizer, const std::vector<int32_t> &ids, bool skip_special);

// Python's `not text.strip()` for valid UTF-8: nothing but white space (str.isspace) or nothing at all.
bool blank(const std::string &text);

// sources.SourceMap.passages: the code point passages [start, end) of token ranges, flat.
std::vector<int64_t> passages(const std::string &text, const int32_t *offsets, size_t n_tokens,
                              std::vector<std::pair<int64_t, int64_t>> token_ranges);

// A session over a borrowed bundle, with what it borrows from the core: the bundle's tokenizer, a pot of
// the bundle's capacity, the policy, the ExecuTorch engine, and the prompting. The defaults are
// acre.runtime.Session's: spans of 64 tokens, 8 representatives, a checkpoint every 4096 tokens.
struct Session {
  const acre_bundle *bundle = nullptr;
  acre_tokenizer *tokenizer = nullptr;
  acre_pot *pot = nullptr;
  acre_policy *policy = nullptr;
  acre_engine *engine = nullptr;
  acre_session *session = nullptr;
  Prompting prompting;

  // Throws Error; policy is a name of acre_policy_name, switches_json NULL or a JSON object.
  Session(const acre_bundle *bundle, const char *policy, const char *switches_json);
  ~Session();
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  // acre.runtime.Session.document_prompt: the template's prefix (or BOS without a template), then the
  // text; each id's code point range in the text, -1 for the prefix's (flat [n][2]).
  std::vector<int32_t> document_prompt(const std::string &text, std::vector<int32_t> &offsets) const;
  // Session.question_prompt_ids: QUESTION_SEPARATOR ("\n\n"), the question, the template's suffix.
  std::vector<int32_t> question_prompt(const std::string &question) const;
  // The last question's sources: code point pairs [start, end) of the document text (flat); none when
  // the document came without text or the session has no store.
  std::vector<int64_t> last_sources() const;

 private:
  void release();  // frees the handles (the destructor, or a constructor that failed)
};

}  // namespace acre_host

#endif
