// What a host does besides calling the core (host.hpp), in C++ for the hosts without Python.
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

json manifest_of(const acre_bundle *bundle) { return json::parse(acre_bundle_manifest_json(bundle)); }

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
                  "...) is not one this host renders (no jinja2 here): it knows the built-in "
                  "SmolLM2's and the tests' ChatML; native/host/host.cpp lists them");
}

std::vector<std::string> known_templates() {
  std::vector<std::string> out;
  for (const KnownTemplate &t : KNOWN_TEMPLATES) out.insert(out.end(), {t.text, t.prefix, t.suffix});
  return out;
}

Prompting prompting(const acre_bundle *bundle, const acre_tokenizer *tokenizer) {
  const json manifest = manifest_of(bundle);  // the core has validated it
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
                                        "(named templates) is not rendered by this host");
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

bool blank(const std::string &text) {
  for (uint32_t c : code_points(text))
    if (!is_space(c)) return false;
  return true;
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

Session::Session(const acre_bundle *b, const char *policy_name, const char *switches_json) : bundle(b) {
  try {
    acre_geometry g{};
    check(acre_bundle_geometry(bundle, &g));
    check(acre_bundle_tokenizer(bundle, &tokenizer));
    prompting = acre_host::prompting(bundle, tokenizer);
    const std::vector<double> inv_freq =
        manifest_of(bundle)["step"]["rope_inv_freq"].get<std::vector<double>>();
    check(acre_pot_new(g.layers, g.kv_heads, g.pot, g.head_dim, g.kv_dtype, inv_freq.data(), inv_freq.size(),
                       &pot));
    check(acre_policy_new(policy_name, switches_json, &policy));
    const acre_session_config config{64, 8, nullptr, 4096, acre_bundle_fingerprint(bundle), tokenizer};
    check(acre_session_new(bundle, pot, policy, &config, &session));
    check(acre_engine_open_executorch(bundle, &engine));
    check(acre_session_set_engine(session, engine));
    check(
        acre_session_set_template_ids(session, prompting.template_ids.data(), prompting.template_ids.size()));
  } catch (...) {
    release();  // a constructor that throws runs no destructor
    throw;
  }
}

Session::~Session() { release(); }

void Session::release() {
  acre_session_free(session);  // first: it borrows the rest
  session = nullptr;
  acre_engine_free(engine);
  engine = nullptr;
  acre_policy_free(policy);
  policy = nullptr;
  acre_pot_free(pot);
  pot = nullptr;
  acre_tokenizer_free(tokenizer);
  tokenizer = nullptr;
}

std::vector<int32_t> Session::document_prompt(const std::string &text, std::vector<int32_t> &offsets) const {
  std::vector<int32_t> ids;
  if (!prompting.prefix.empty())
    ids = encode(tokenizer, prompting.prefix);
  else if (prompting.bos >= 0)
    ids.push_back(prompting.bos);
  offsets.assign(2 * ids.size(), -1);
  std::vector<int32_t> text_offsets;
  const std::vector<int32_t> text_ids = encode_offsets(tokenizer, text, text_offsets);
  ids.insert(ids.end(), text_ids.begin(), text_ids.end());
  offsets.insert(offsets.end(), text_offsets.begin(), text_offsets.end());
  return ids;
}

std::vector<int32_t> Session::question_prompt(const std::string &question) const {
  return encode(tokenizer, "\n\n" + question + prompting.suffix);
}

std::vector<int64_t> Session::last_sources() const {
  acre_question q{};
  check(acre_session_last(session, &q));
  acre_array ids{}, text{}, offsets{};
  check(acre_session_document(session, &ids, &text, &offsets));
  acre_store *store = nullptr;
  check(acre_session_store(session, &store));
  if (!store || !text.data || !offsets.data) {
    acre_store_free(store);
    return {};
  }
  std::vector<std::pair<int64_t, int64_t>> ranges;
  acre_status status = ACRE_OK;
  for (size_t i = 0; i < q.n_spans && status == ACRE_OK; ++i) {
    int64_t start = 0;
    int32_t n = 0;
    status = acre_store_span(store, static_cast<size_t>(q.spans[i]), &start, &n);
    ranges.push_back({start, start + n});
  }
  acre_store_free(store);
  check(status);
  return passages(std::string(static_cast<const char *>(text.data), text.info.bytes),
                  static_cast<const int32_t *>(offsets.data), static_cast<size_t>(ids.info.dims[0]), ranges);
}

}  // namespace acre_host
