// Fuzz target: a Hugging Face tokenizer.json (tokenizer.cpp). A refusal must be ACRE_ERR_TOKENIZER.
// A tokenizer that loads then encodes a short fixed text (with and without offsets; a capacity of the
// text's length must suffice, as acre.h promises), decodes what it got (with and without special
// tokens) and each of its first ids, and looks up the special tokens of the seeds.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz.hpp"

namespace {

// Words, contractions, digits, the whitespace the GPT-2 pattern splits on (U+0085, U+3000; U+180E is
// not \s there), the seeds' special tokens, accents, CJK and an emoji.
constexpr char kText[] =
    "Hello, world! It's 42 o'clock; we'll see.\n\n\tThe pass key is 12345.<|im_start|>user\n"
    "caf\xC3\xA9 na\xC3\xAFve \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x98\x80\xC2\x85x\xE3\x80\x80y"
    "\xE1\xA0\x8Ez<|im_end|><|endoftext|>   end";

void decode(const acre_tokenizer *tokenizer, const std::vector<int32_t> &ids, int skip_special) {
  size_t n = 0;
  std::string out(16, '\0');
  acre_status s =
      acre_detokenize(tokenizer, ids.data(), ids.size(), skip_special, out.data(), out.size(), &n);
  if (s == ACRE_ERR_BUFFER_TOO_SMALL) {
    out.resize(n);
    s = acre_detokenize(tokenizer, ids.data(), ids.size(), skip_special, out.data(), out.size(), &n);
  }
  // an id outside the vocabulary (a gap in the ids) is refused by name
  if (fuzz::expect(s, {ACRE_ERR_INVALID_ARGUMENT}, "acre_detokenize") && n > out.size())
    fuzz::finding("acre_detokenize wrote more than its buffer");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static fuzz::Scratch scratch("tokenizer");
  static const std::string path = scratch.path("tokenizer.json").string();
  fuzz::write_file(path, data, size);

  acre_tokenizer *tokenizer = nullptr;
  if (!fuzz::expect(acre_tokenizer_open(path.c_str(), &tokenizer), {ACRE_ERR_TOKENIZER},
                    "acre_tokenizer_open"))
    return 0;
  const size_t length = sizeof kText - 1;
  std::vector<int32_t> ids(length), with_offsets(length);
  std::vector<uint32_t> offsets(2 * length);
  size_t n = 0, m = 0;
  fuzz::expect(acre_tokenize(tokenizer, kText, length, ids.data(), ids.size(), &n), {}, "acre_tokenize");
  fuzz::expect(acre_tokenize_offsets(tokenizer, kText, length, with_offsets.data(), offsets.data(),
                                     with_offsets.size(), &m),
               {}, "acre_tokenize_offsets");
  ids.resize(n);
  with_offsets.resize(m);
  if (ids != with_offsets) fuzz::finding("acre_tokenize_offsets gave other ids than acre_tokenize");
  const int32_t vocab = acre_tokenizer_vocab_size(tokenizer);
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= vocab)
      fuzz::finding("an id outside the vocabulary: " + std::to_string(ids[i]));
    if (offsets[2 * i] > offsets[2 * i + 1] || offsets[2 * i + 1] > length)
      fuzz::finding("an id's byte range is outside the text");
  }
  decode(tokenizer, ids, 0);
  decode(tokenizer, ids, 1);
  for (int32_t id = 0; id < vocab && id < 64; ++id) decode(tokenizer, {id}, 0);
  decode(tokenizer, {vocab}, 0);  // one past the last: refused
  for (const char *token : {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "\xC4\xA0"}) {
    int32_t id = -1;
    if (fuzz::expect(acre_token_to_id(tokenizer, token, &id), {ACRE_ERR_INVALID_ARGUMENT},
                     "acre_token_to_id") &&
        (id < 0 || id >= vocab))
      fuzz::finding(std::string("acre_token_to_id gave ") + std::to_string(id) + " for " + token);
  }
  acre_tokenizer_free(tokenizer);
  return 0;
}
