// The tokenizer the bundle ships: byte-level BPE read from a Hugging Face tokenizer.json, encoding
// and decoding token for token as the `tokenizers` library does. What it cannot run it refuses.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core.hpp"

namespace acre {

class Tokenizer {
 public:
  explicit Tokenizer(const std::string &path);  // throws Error(ACRE_ERR_TOKENIZER)
  ~Tokenizer();
  Tokenizer(const Tokenizer &) = delete;
  Tokenizer &operator=(const Tokenizer &) = delete;

  // The text's ids; with `spans`, also each id's byte range [first, second) in the text (an id of a
  // word whose ids do not add up to its bytes, as with an unknown token, gets the whole word's range).
  std::vector<int32_t> encode(std::string_view text,
                              std::vector<std::pair<uint32_t, uint32_t>> *spans = nullptr) const;
  std::string decode(const int32_t *ids, size_t n, bool skip_special) const;
  int32_t vocab_size() const { return static_cast<int32_t>(id_to_token_.size()); }
  bool token_to_id(const std::string &token, int32_t *id) const;

 private:
  struct Added {
    std::string content;
    int32_t id;
    bool special;
    bool normalized;
  };
  struct Merge {
    int32_t rank;
    int32_t id;
  };

  // pieces of text that are added tokens (id >= 0) or plain text (id < 0), in order
  struct Piece {
    std::string_view text;
    int32_t id;
  };
  void split_added(std::vector<Piece> &pieces, bool normalized) const;
  void pre_tokenize(std::string_view text, std::vector<std::string_view> &words) const;
  void encode_word(std::string_view word, std::vector<int32_t> &out) const;
  void bpe(std::string_view word, std::vector<int32_t> &out) const;
  std::string token_bytes(int32_t id) const;  // the bytes an id stands for (id checked by the caller)

  std::string path_;
  std::unordered_map<std::string, int32_t> vocab_;  // model vocabulary and added tokens
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_, special_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id << 32 | right id) -> rank, merged id
  std::vector<Added> added_;
  bool ignore_merges_ = false;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  std::array<int32_t, 256> byte_id_{};               // id of each byte's character, -1 if absent
  std::array<std::string, 256> byte_char_;           // the character (UTF-8) byte-level BPE uses per byte
  std::unordered_map<uint32_t, uint8_t> char_byte_;  // code point -> byte, for decoding
  void *regex_ = nullptr;                            // pcre2_code_8 of the GPT-2 pre-tokenizer pattern
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;  // word -> ids
};

// UTF-8 helpers shared with the decoder.
bool valid_utf8(std::string_view text);
std::string utf8_lossy(std::string_view bytes);  // invalid subsequences -> U+FFFD, as Rust does

}  // namespace acre
