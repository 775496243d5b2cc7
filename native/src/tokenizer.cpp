// Byte-level BPE from tokenizer.json, in the order the `tokenizers` library runs it:
//   1. added tokens are split out of the text (leftmost-longest match; first those with
//      normalized=false, then the others; without a normalizer both match the raw text);
//   2. the ByteLevel pre-tokenizer splits the rest with the GPT-2 regex and maps each byte to its
//      printable character;
//   3. BPE merges each word's characters, lowest merge rank first (leftmost among equals).
// Decoding maps the characters of each token back to bytes and replaces invalid UTF-8 with U+FFFD.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer.hpp"

#include <pcre2.h>

#include <algorithm>
#include <fstream>
#include <queue>
#include <sstream>

#include <nlohmann/json.hpp>

namespace acre {

using nlohmann::json;

namespace {

// The GPT-2 pattern of the ByteLevel pre-tokenizer. \s is written out as Oniguruma (which the
// tokenizers library uses) defines it for Unicode: U+0009-U+000D, U+0085 and the separators
// (category Z). PCRE2's own \s also takes U+180E, Oniguruma's does not.
constexpr const char *kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\t-\r\x{85}\p{Z}\p{L}\p{N}]+)"
    R"(|[\t-\r\x{85}\p{Z}]+(?![^\t-\r\x{85}\p{Z}])|[\t-\r\x{85}\p{Z}]+)";

constexpr size_t kCacheWords = 50000;   // words whose ids are remembered (cleared when full)
constexpr size_t kCacheWordBytes = 64;  // longer words are not cached

void append_utf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Length of the valid UTF-8 sequence at s[i] (0 if invalid); `valid` is how many of its bytes
// form a valid prefix (the maximal subpart replaced by one U+FFFD when the sequence breaks off).
size_t utf8_sequence(std::string_view s, size_t i, size_t *valid, uint32_t *cp) {
  const auto b0 = static_cast<unsigned char>(s[i]);
  *valid = 0;
  if (b0 < 0x80) {
    *cp = b0;
    return 1;
  }
  size_t need;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  uint32_t value = b0 & (0xFF >> (need + 1));
  *valid = 1;
  for (size_t k = 1; k < need; ++k) {
    if (i + k >= s.size()) return 0;
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < lo || b > hi) return 0;
    lo = 0x80;
    hi = 0xBF;
    value = (value << 6) | (b & 0x3F);
    *valid = k + 1;
  }
  *cp = value;
  return need;
}

// The GPT-2 byte -> character table: printable Latin-1 bytes stand for themselves, the others
// are mapped in order to U+0100 onwards.
std::array<uint32_t, 256> byte_characters() {
  std::array<uint32_t, 256> table{};
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    table[b] = printable ? b : next++;
  }
  return table;
}

std::string type_of(const json &node) {
  if (node.is_object() && node.contains("type") && node["type"].is_string())
    return node["type"].get<std::string>();
  return node.dump();
}

bool flag(const json &node, const char *key, bool fallback) {
  auto it = node.find(key);
  if (it == node.end() || it->is_null()) return fallback;
  return it->is_boolean() ? it->get<bool>() : !fallback;
}

}  // namespace

bool valid_utf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    size_t valid;
    uint32_t cp;
    const size_t n = utf8_sequence(text, i, &valid, &cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    size_t valid;
    uint32_t cp;
    const size_t n = utf8_sequence(bytes, i, &valid, &cp);
    if (n) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += std::max<size_t>(valid, 1);
    }
  }
  return out;
}

Tokenizer::Tokenizer(const std::string &path) : path_(path) {
  auto refuse = [&](const std::string &why) { fail(ACRE_ERR_TOKENIZER, path + ": " + why); };
  std::ifstream in(path, std::ios::binary);
  if (!in) refuse("missing or unreadable");
  std::ostringstream text;
  text << in.rdbuf();
  json t;
  try {
    t = json::parse(text.str());
  } catch (const json::exception &e) {
    refuse(std::string("not valid JSON (") + e.what() + ")");
  }
  if (!t.is_object() || !t.contains("model") || !t["model"].is_object())
    refuse("not a Hugging Face tokenizer.json (no model)");

  // What the core runs: anything else is refused by name rather than encoded differently.
  const json &model = t["model"];
  if (type_of(model) != "BPE")
    refuse("model type " + type_of(model) + " is not supported (the core runs byte-level BPE)");
  if (t.contains("normalizer") && !t["normalizer"].is_null())
    refuse("normalizer " + type_of(t["normalizer"]) + " is not supported (the core runs none)");
  const json pre = t.value("pre_tokenizer", json());
  if (type_of(pre) != "ByteLevel")
    refuse("pre_tokenizer " + type_of(pre) + " is not supported (the core runs ByteLevel)");
  if (flag(pre, "add_prefix_space", false))
    refuse("pre_tokenizer ByteLevel with add_prefix_space is not supported");
  if (!flag(pre, "use_regex", true)) refuse("pre_tokenizer ByteLevel without use_regex is not supported");
  const json decoder = t.value("decoder", json());
  if (type_of(decoder) != "ByteLevel")
    refuse("decoder " + type_of(decoder) + " is not supported (the core runs ByteLevel)");
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      !(model["dropout"].is_number() && model["dropout"].get<double>() == 0.0))
    refuse("BPE dropout is not supported");
  for (const char *key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && model[key] != "")
      refuse(std::string("BPE ") + key + " is not supported");
  }
  if (flag(model, "byte_fallback", false)) refuse("BPE byte_fallback is not supported");
  ignore_merges_ = flag(model, "ignore_merges", false);
  fuse_unk_ = flag(model, "fuse_unk", false);

  if (!model.contains("vocab") || !model["vocab"].is_object()) refuse("BPE model has no vocab");
  int32_t max_id = -1;
  for (const auto &[token, id] : model["vocab"].items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= (1 << 30))
      refuse("vocab id of " + json(token).dump() + " is not a small non-negative integer");
    vocab_[token] = id.get<int32_t>();
    max_id = std::max(max_id, id.get<int32_t>());
  }
  const json added = t.value("added_tokens", json::array());
  if (!added.is_array()) refuse("added_tokens is not a list");
  for (const json &a : added) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int64_t>() < 0 ||
        a["id"].get<int64_t>() >= (1 << 30) || !a.contains("content") || !a["content"].is_string() ||
        a["content"].get<std::string>().empty())
      refuse("an added token without id or content");
    const std::string content = a["content"].get<std::string>();
    for (const char *key : {"lstrip", "rstrip", "single_word"}) {
      if (flag(a, key, false))
        refuse("added token " + json(content).dump() + " has " + key + ", which is not supported");
    }
    added_.push_back(
        {content, a["id"].get<int32_t>(), flag(a, "special", false), flag(a, "normalized", true)});
    max_id = std::max(max_id, a["id"].get<int32_t>());
  }
  // Ids index tables of one entry each (a string per id): ids far past the tokens given would make a
  // file of a few bytes allocate gigabytes. Ids may leave gaps, but not more gaps than tokens.
  const size_t tokens = vocab_.size() + added_.size();
  if (size_t(max_id) >= 2 * tokens + 256)
    refuse("ids run up to " + std::to_string(max_id) + " for " + std::to_string(tokens) +
           " tokens; ids that are mostly gaps are not supported");
  id_to_token_.assign(max_id + 1, std::string());
  has_id_.assign(max_id + 1, false);
  special_.assign(max_id + 1, false);
  for (const auto &[token, id] : vocab_) {
    id_to_token_[id] = token;
    has_id_[id] = true;
  }
  for (const Added &a : added_) {  // the added vocabulary wins, as in `tokenizers`
    id_to_token_[a.id] = a.content;
    has_id_[a.id] = true;
    special_[a.id] = a.special;
    vocab_[a.content] = a.id;
  }
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    auto it = vocab_.find(model["unk_token"].get<std::string>());
    if (it == vocab_.end()) refuse("unk_token is not in the vocabulary");
    unk_id_ = it->second;
  }

  const json merges = model.value("merges", json::array());
  if (!merges.is_array()) refuse("BPE merges is not a list");
  int32_t rank = 0;
  for (const json &m : merges) {
    std::string left, right;
    if (m.is_string()) {  // the older "a b" form
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        refuse("merge " + m.dump() + " is not two tokens");
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      refuse("merge " + m.dump() + " is not two tokens");
    }
    auto a = vocab_.find(left), b = vocab_.find(right), ab = vocab_.find(left + right);
    if (a == vocab_.end() || b == vocab_.end() || ab == vocab_.end())
      refuse("merge " + m.dump() + " names a token outside the vocabulary");
    const uint64_t key = (static_cast<uint64_t>(a->second) << 32) | static_cast<uint32_t>(b->second);
    merges_.emplace(key, Merge{rank++, ab->second});  // the first occurrence keeps its rank
  }

  const auto chars = byte_characters();
  for (int b = 0; b < 256; ++b) {
    byte_char_[b].clear();
    append_utf8(byte_char_[b], chars[b]);
    auto it = vocab_.find(byte_char_[b]);
    byte_id_[b] = it == vocab_.end() ? -1 : it->second;
    char_byte_[chars[b]] = static_cast<uint8_t>(b);
  }

  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code *code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kGpt2Pattern), PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof message);
    fail(ACRE_ERR_INTERNAL,
         std::string("PCRE2 cannot compile the GPT-2 pattern: ") + reinterpret_cast<const char *>(message));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // without JIT (unsupported CPU) it still matches
  regex_ = code;
}

Tokenizer::~Tokenizer() { pcre2_code_free(static_cast<pcre2_code *>(regex_)); }

bool Tokenizer::token_to_id(const std::string &token, int32_t *id) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return false;
  *id = it->second;
  return true;
}

void Tokenizer::split_added(std::vector<Piece> &pieces, bool normalized) const {
  std::vector<const Added *> tokens;
  for (const Added &a : added_)
    if (a.normalized == normalized) tokens.push_back(&a);
  if (tokens.empty()) return;
  std::vector<Piece> out;
  for (const Piece &piece : pieces) {
    if (piece.id >= 0) {
      out.push_back(piece);
      continue;
    }
    const std::string_view s = piece.text;
    size_t start = 0, i = 0;
    while (i < s.size()) {
      const Added *best = nullptr;  // leftmost, then longest
      for (const Added *a : tokens) {
        if (a->content[0] == s[i] && s.compare(i, a->content.size(), a->content) == 0 &&
            (!best || a->content.size() > best->content.size()))
          best = a;
      }
      if (!best) {
        ++i;
        continue;
      }
      if (i > start) out.push_back({s.substr(start, i - start), -1});
      out.push_back({s.substr(i, best->content.size()), best->id});
      i += best->content.size();
      start = i;
    }
    if (start < s.size()) out.push_back({s.substr(start), -1});
  }
  pieces.swap(out);
}

void Tokenizer::pre_tokenize(std::string_view text, std::vector<std::string_view> &words) const {
  auto *code = static_cast<pcre2_code *>(regex_);
  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data *)> match(
      pcre2_match_data_create_from_pattern(code, nullptr), &pcre2_match_data_free);
  if (!match) fail(ACRE_ERR_INTERNAL, "out of memory for a PCRE2 match");
  const auto *subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t at = 0;
  while (at < text.size()) {
    const int rc = pcre2_match(code, subject, text.size(), at, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(rc, message, sizeof message);
      fail(ACRE_ERR_INTERNAL, std::string("PCRE2 match failed: ") + reinterpret_cast<const char *>(message));
    }
    const PCRE2_SIZE *span = pcre2_get_ovector_pointer(match.get());
    if (span[0] > at) words.push_back(text.substr(at, span[0] - at));  // not matched: kept as is
    if (span[1] == span[0]) break;  // the pattern cannot match empty; stop rather than loop
    words.push_back(text.substr(span[0], span[1] - span[0]));
    at = span[1];
  }
  if (at < text.size()) words.push_back(text.substr(at));
}

void Tokenizer::bpe(std::string_view word, std::vector<int32_t> &out) const {
  // Symbols as a linked list over the word's bytes; a queue of candidate merges ordered by rank,
  // then position (what `tokenizers` does, so ties resolve leftmost first).
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  bool unk_open = false;
  for (const char c : word) {
    int32_t id = byte_id_[static_cast<unsigned char>(c)];
    if (id < 0) {
      if (unk_id_ < 0) continue;  // no unk token: the byte is dropped, as `tokenizers` does
      if (fuse_unk_ && unk_open) continue;
      id = unk_id_;
      unk_open = true;
    } else {
      unk_open = false;
    }
    const auto n = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, n - 1, n + 1, true});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    int32_t rank, pos, id;
    bool operator>(const Candidate &o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto consider = [&](int32_t pos) {
    const int32_t next = symbols[pos].next;
    if (next < 0) return;
    auto it = merges_.find((static_cast<uint64_t>(symbols[pos].id) << 32) |
                           static_cast<uint32_t>(symbols[next].id));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol &left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    Symbol &right = symbols[left.next];
    auto it = merges_.find((static_cast<uint64_t>(left.id) << 32) | static_cast<uint32_t>(right.id));
    if (it == merges_.end() || it->second.id != top.id) continue;  // stale: a neighbour changed
    left.id = top.id;
    right.alive = false;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

void Tokenizer::encode_word(std::string_view word, std::vector<int32_t> &out) const {
  const bool cacheable = word.size() <= kCacheWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(std::string(word));
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  if (ignore_merges_) {
    std::string chars;
    for (unsigned char b : word) chars += byte_char_[b];
    auto it = vocab_.find(chars);
    if (it != vocab_.end()) ids.push_back(it->second);
  }
  if (ids.empty()) bpe(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() >= kCacheWords) cache_.clear();
    cache_.emplace(std::string(word), std::move(ids));
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text,
                                       std::vector<std::pair<uint32_t, uint32_t>> *spans) const {
  if (!valid_utf8(text)) fail(ACRE_ERR_INVALID_ARGUMENT, "text to encode is not valid UTF-8");
  std::vector<Piece> pieces{{text, -1}};
  split_added(pieces, false);
  split_added(pieces, true);
  std::vector<int32_t> out;
  std::vector<std::string_view> words;
  // pieces and words are views into `text`, so their offsets are where they point
  const auto offset = [&](std::string_view part) { return static_cast<uint32_t>(part.data() - text.data()); };
  for (const Piece &piece : pieces) {
    if (piece.id >= 0) {
      out.push_back(piece.id);
      if (spans) spans->emplace_back(offset(piece.text), offset(piece.text) + piece.text.size());
      continue;
    }
    words.clear();
    pre_tokenize(piece.text, words);
    for (std::string_view word : words) {
      const size_t first = out.size();
      encode_word(word, out);
      if (!spans) continue;
      const uint32_t begin = offset(word), end = begin + static_cast<uint32_t>(word.size());
      uint32_t at = begin;
      for (size_t k = first; k < out.size(); ++k) {
        const auto length = static_cast<uint32_t>(token_bytes(out[k]).size());
        spans->emplace_back(at, at + length);
        at += length;
      }
      if (at != end)
        for (size_t k = first; k < out.size(); ++k) (*spans)[k] = {begin, end};
    }
  }
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  // a token whose every character is a byte character stands for those bytes; otherwise (an
  // added token written in other characters) for its own UTF-8
  const std::string &token = id_to_token_[id];
  std::string mapped;
  for (size_t k = 0; k < token.size();) {
    size_t valid;
    uint32_t cp;
    const size_t len = utf8_sequence(token, k, &valid, &cp);
    auto it = len ? char_byte_.find(cp) : char_byte_.end();
    if (it == char_byte_.end()) return token;
    mapped += static_cast<char>(it->second);
    k += len;
  }
  return mapped;
}

std::string Tokenizer::decode(const int32_t *ids, size_t n, bool skip_special) const {
  std::string bytes;
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab_size() || !has_id_[id])
      fail(ACRE_ERR_INVALID_ARGUMENT, "token id " + std::to_string(id) + " is not in the vocabulary (" +
                                          std::to_string(vocab_size()) + " ids)");
    if (skip_special && special_[id]) continue;
    bytes += token_bytes(id);
  }
  return utf8_lossy(bytes);
}

}  // namespace acre
