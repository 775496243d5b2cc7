// What a host of the core does besides calling it, for the JNI library (and any C++ host): the chat
// template's single user turn, the tokenizer's special ids, the bundle fingerprint, the document's
// prompt with character offsets, and the sources of the spans a question refilled. acre/runtime/session.py,
// tokenizer.py and sources.py do the same in Python; the JVM tests hold the two to the same ids.
#ifndef ACRE_JNI_HOST_HPP
#define ACRE_JNI_HOST_HPP

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

// acre.runtime.session.bundle_fingerprint: sha256 of json.dumps({geometry, step, programs}, sort_keys=True).
std::string fingerprint(const acre_bundle *bundle);

std::vector<int32_t> encode(const acre_tokenizer *tokenizer, const std::string &text);
// Ids of the text and each id's code point range [first, end) in it (flat), as Python's str indexes.
std::vector<int32_t> encode_offsets(const acre_tokenizer *tokenizer, const std::string &text,
                                    std::vector<int32_t> &offsets);
std::string decode(const acre_tokenizer *tokenizer, const std::vector<int32_t> &ids, bool skip_special);

// sources.SourceMap.passages: the code point passages [start, end) of token ranges, flat.
std::vector<int64_t> passages(const std::string &text, const int32_t *offsets, size_t n_tokens,
                              std::vector<std::pair<int64_t, int64_t>> token_ranges);

}  // namespace acre_host

#endif
