// What the host does besides calling the core (host.hpp), in C++ for the JNI library.
#include "host.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

namespace acre_host {

namespace {

using json = nlohmann::json;

// The chat templates rendered here, each with its single user turn (add_generation_prompt) split at the
// message. The tests' ChatML (tests/conftest.py) has no system turn; SmolLM2's adds its default one.
struct KnownTemplate {
  const char *text, *prefix, *suffix;
};
const KnownTemplate KNOWN_TEMPLATES[] = {
    {"{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
     "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
     "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% "
     "endif %}",
     "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\n<|im_start|>user\n",
     "<|im_end|>\n<|im_start|>assistant\n"},
    {"{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
     "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif "
     "%}",
     "<|im_start|>user\n", "<|im_end|>\n<|im_start|>assistant\n"},
};

const char *const NAMED_TOKENS[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                    "pad_token", "cls_token", "mask_token"};

bool read_file(const std::string &path, std::string &out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  out = s.str();
  return true;
}

// A special token as tokenizer_config.json writes it: a string or an AddedToken object.
const std::string *token_text(const json &value) {
  if (value.is_object() && value.contains("content")) return token_text(value["content"]);
  return value.is_string() ? value.get_ptr<const std::string *>() : nullptr;
}

// json.dumps(value, sort_keys=True) with Python's defaults: separators ", " and ": ", ensure_ascii.
void dumps(const json &v, std::string &out) {
  if (v.is_object()) {
    out += '{';
    bool first = true;
    for (const auto &[key, item] : v.items()) {  // nlohmann's object is a std::map: sorted keys
      if (!first) out += ", ";
      first = false;
      out += json(key).dump(-1, ' ', true);
      out += ": ";
      dumps(item, out);
    }
    out += '}';
  } else if (v.is_array()) {
    out += '[';
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out += ", ";
      dumps(v[i], out);
    }
    out += ']';
  } else {
    // scalars: nlohmann writes floats shortest round-trip with ".0" or "e-05" as Python's repr does
    out += v.dump(-1, ' ', true);
  }
}

std::string sha256_hex(const std::string &data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (!EVP_Digest(data.data(), data.size(), md, &n, EVP_sha256(), nullptr))
    throw Error(ACRE_ERR_INTERNAL, "sha256 failed");
  static const char *hex = "0123456789abcdef";
  std::string s;
  for (unsigned int i = 0; i < n; ++i) s += hex[md[i] >> 4], s += hex[md[i] & 15];
  return s;
}

json manifest_of(const acre_bundle *bundle) {
  return json::parse(acre_bundle_manifest_json(bundle));  // the core has validated it
}

// Python's str.isspace for a code point.
bool is_space(uint32_t c) {
  return (c >= 9 && c <= 13) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

std::vector<uint32_t> code_points(const std::string &text) {  // of valid UTF-8 (the core checked it)
  std::vector<uint32_t> cps;
  for (size_t i = 0; i < text.size();) {
    const auto b = static_cast<unsigned char>(text[i]);
    const int n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    uint32_t c = n == 1 ? b : b & (0x7F >> n);
    for (int k = 1; k < n && i + k < text.size(); ++k)
      c = (c << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    cps.push_back(c);
    i += n;
  }
  return cps;
}

}  // namespace

void check(acre_status status) {
  if (status != ACRE_OK) throw Error(status, acre_last_error());
}

std::pair<std::string, std::string> split_chat_template(const std::string *chat_template) {
  if (!chat_template || chat_template->empty()) return {"", "\n"};
  for (const KnownTemplate &t : KNOWN_TEMPLATES)
    if (*chat_template == t.text) return {t.prefix, t.suffix};
  throw Error(ACRE_ERR_TOKENIZER,
              "this bundle's chat template (sha256 " + sha256_hex(*chat_template).substr(0, 16) +
                  "...) is not one the JVM binding renders (no jinja2 here): it knows the built-in "
                  "SmolLM2's and the tests' ChatML; native/jni/host.cpp lists them");
}

std::vector<std::string> known_templates() {
  std::vector<std::string> out;
  for (const KnownTemplate &t : KNOWN_TEMPLATES) out.insert(out.end(), {t.text, t.prefix, t.suffix});
  return out;
}

Prompting prompting(const acre_bundle *bundle, const acre_tokenizer *tokenizer) {
  const json manifest = manifest_of(bundle);
  const std::string dir =
      std::string(acre_bundle_root(bundle)) + "/" + manifest["tokenizer"]["dir"].get<std::string>();
  json config = json::object();
  std::string text;
  if (read_file(dir + "/tokenizer_config.json", text)) {
    config = json::parse(text, nullptr, false);
    if (config.is_discarded() || !config.is_object())
      throw Error(ACRE_ERR_TOKENIZER, dir + "/tokenizer_config.json: unreadable (not a JSON object)");
  }
  std::string chat_template;
  const std::string *template_ptr = nullptr;
  if (read_file(dir + "/chat_template.jinja", chat_template)) {
    template_ptr = &chat_template;
  } else if (config.contains("chat_template") && config["chat_template"].is_string()) {
    template_ptr = config["chat_template"].get_ptr<const std::string *>();
  } else if (config.contains("chat_template") && !config["chat_template"].is_null()) {
    throw Error(ACRE_ERR_TOKENIZER, dir +
                                        "/tokenizer_config.json: a chat_template that is not one text "
                                        "(named templates) is not rendered by the JVM binding");
  }
  Prompting p;
  std::tie(p.prefix, p.suffix) = split_chat_template(template_ptr);

  std::vector<std::string> names;
  for (const char *name : NAMED_TOKENS)
    if (config.contains(name))
      if (const std::string *t = token_text(config[name])) names.push_back(*t);
  const char *extra_key = config.contains("additional_special_tokens") &&
                                  config["additional_special_tokens"].is_array() &&
                                  !config["additional_special_tokens"].empty()
                              ? "additional_special_tokens"
                              : "extra_special_tokens";
  if (config.contains(extra_key) && config[extra_key].is_array())
    for (const json &e : config[extra_key])
      if (const std::string *t = token_text(e)) names.push_back(*t);
  std::set<int32_t> ids;
  for (const std::string &name : names) {
    int32_t id = -1;
    if (acre_token_to_id(tokenizer, name.c_str(), &id) == ACRE_OK) ids.insert(id);
  }
  if (config.contains("bos_token"))
    if (const std::string *bos = token_text(config["bos_token"])) {
      int32_t id = -1;
      if (acre_token_to_id(tokenizer, bos->c_str(), &id) == ACRE_OK) p.bos = id;
    }
  for (int32_t id : encode(tokenizer, p.prefix + p.suffix)) ids.insert(id);
  p.template_ids.assign(ids.begin(), ids.end());
  return p;
}

std::string fingerprint(const acre_bundle *bundle) {
  const json m = manifest_of(bundle);
  const std::string tokenizer_dir = "tokenizer/";  // acre.bundle.TOKENIZER_DIR
  json programs = json::object();
  for (const auto &[name, info] : m["files"].items())
    if (name.compare(0, tokenizer_dir.size(), tokenizer_dir) != 0) programs[name] = info["sha256"];
  json blob = {{"geometry", m["model"]["geometry"]}, {"step", m["step"]}, {"programs", programs}};
  std::string text;
  dumps(blob, text);
  return sha256_hex(text);
}

std::vector<int32_t> encode(const acre_tokenizer *tokenizer, const std::string &text) {
  std::vector<int32_t> ids(text.size());
  size_t n = 0;
  check(acre_tokenize(tokenizer, text.data(), text.size(), ids.data(), ids.size(), &n));
  ids.resize(n);
  return ids;
}

std::vector<int32_t> encode_offsets(const acre_tokenizer *tokenizer, const std::string &text,
                                    std::vector<int32_t> &offsets) {
  std::vector<int32_t> ids(text.size());
  std::vector<uint32_t> bytes(2 * ids.size());
  size_t n = 0;
  check(acre_tokenize_offsets(tokenizer, text.data(), text.size(), ids.data(), bytes.data(), ids.size(), &n));
  ids.resize(n);
  // byte offset -> index of the code point it belongs to (as native/python/binding.hpp does)
  const size_t size = text.size();
  std::vector<int32_t> char_at(size + 1);
  int32_t chars = -1;
  for (size_t b = 0; b < size; ++b) {
    if ((static_cast<unsigned char>(text[b]) & 0xC0) != 0x80) ++chars;
    char_at[b] = chars;
  }
  char_at[size] = chars + 1;
  offsets.assign(2 * n, 0);
  for (size_t i = 0; i < 2 * n; ++i) {
    const uint32_t b = bytes[i];
    const bool inside = i % 2 && b < size && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80;
    offsets[i] = char_at[b] + (inside ? 1 : 0);
  }
  return ids;
}

std::string decode(const acre_tokenizer *tokenizer, const std::vector<int32_t> &ids, bool skip_special) {
  size_t n = 0;
  const acre_status status = acre_detokenize(tokenizer, ids.data(), ids.size(), skip_special, nullptr, 0, &n);
  if (status != ACRE_OK && status != ACRE_ERR_BUFFER_TOO_SMALL) check(status);
  std::string text(n, '\0');
  check(acre_detokenize(tokenizer, ids.data(), ids.size(), skip_special, text.data(), n, &n));
  return text;
}

std::vector<int64_t> passages(const std::string &text, const int32_t *offsets, size_t n_tokens,
                              std::vector<std::pair<int64_t, int64_t>> token_ranges) {
  const std::vector<uint32_t> cps = code_points(text);
  std::sort(token_ranges.begin(), token_ranges.end());
  std::vector<std::pair<int64_t, int64_t>> merged;
  for (const auto &[start, end] : token_ranges) {
    if (!merged.empty() && start <= merged.back().second)
      merged.back().second = std::max(merged.back().second, end);
    else
      merged.push_back({start, end});
  }
  std::vector<int64_t> out;  // start, end, start, end, ...
  for (const auto &[start, end] : merged) {
    int64_t first = -1, last = -1;
    for (int64_t t = std::max<int64_t>(start, 0); t < end && t < static_cast<int64_t>(n_tokens); ++t) {
      if (offsets[2 * t] == -1) continue;  // not in the text (template, BOS)
      first = first == -1 ? offsets[2 * t] : std::min<int64_t>(first, offsets[2 * t]);
      last = std::max<int64_t>(last, offsets[2 * t + 1]);
    }
    if (first == -1) continue;
    if (!out.empty() && first <= out.back()) {  // a character shared by two tokens' ranges
      first = out[out.size() - 2];
      out.resize(out.size() - 2);
    }
    last = std::min<int64_t>(last, static_cast<int64_t>(cps.size()));
    while (first < last && is_space(cps[first])) ++first;  // a token's leading space is not quoted
    while (last > first && is_space(cps[last - 1])) --last;
    if (first < last) out.push_back(first), out.push_back(last);
  }
  return out;
}

}  // namespace acre_host
