// acre-cli: the Python `acre run` and `acre profile` for a board without Python, over acre.h and the
// host library beside it (native/host: prompts, the chat template's table, sources), the way llama.cpp's
// examples sit on llama.h and common/. Same flags, same output, same exit codes (2 for bad input).
//   acre-cli run BUNDLE --context FILE --question Q [--store DIR] [--replace] [--sources] ...
//   acre-cli profile BUNDLE --tokens N [--budget 300MB] [--json]
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "acre.h"
#include "host.hpp"

namespace {

using acre_host::check;
using acre_host::Error;
using json = nlohmann::ordered_json;  // keys in the order Python's dict has them
using Clock = std::chrono::steady_clock;

const char USAGE[] =
    "usage: acre-cli run BUNDLE --question Q [--context FILE] [--store DIR] [--replace] [--sources]\n"
    "                    [--engine auto|executorch] [--policy full|streaming|infinipot|acre]\n"
    "                    [--max-new-tokens N] [--temperature T] [--top-p P] [--seed S] [--token-ids]\n"
    "       acre-cli profile BUNDLE --tokens N [--budget BYTES] [--json] [--engine E] [--policy P]\n"
    "Flags as the Python `acre` has them (acre --help). --context reads plain text (UTF-8) only: the\n"
    "Python acre reads Markdown, HTML and PDF through Python. --token-ids also prints the answer's\n"
    "token ids to standard error.\n";

// A bad command line: the message, then the usage, and exit code 2 (as argparse).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Args {
  std::string command, bundle, engine = "auto", policy = "acre";
  std::string context, store, question, budget;
  bool has_context = false, has_store = false, has_question = false, replace = false, sources = false;
  bool json = false, token_ids = false, has_seed = false;
  int64_t max_new_tokens = 200, tokens = 0;
  bool has_tokens = false;
  double temperature = 0.0, top_p = 1.0;
  uint64_t seed = 0;
};

// The whole argument as a number (std::stoll / std::stod), or argparse's message for `kind`.
template <typename T, typename Convert>
T to_number(const std::string &flag, const std::string &v, const char *kind, Convert convert) {
  size_t used = 0;
  T x = 0;
  try {
    x = convert(v, &used);
  } catch (const std::exception &) {
    used = 0;
  }
  if (used == 0 || used != v.size())
    throw UsageError("argument " + flag + ": invalid " + kind + " value: '" + v + "'");
  return x;
}

int64_t to_int(const std::string &flag, const std::string &v) {
  return to_number<int64_t>(flag, v, "int",
                            [](const std::string &s, size_t *used) { return std::stoll(s, used); });
}

double to_float(const std::string &flag, const std::string &v) {
  return to_number<double>(flag, v, "float",
                           [](const std::string &s, size_t *used) { return std::stod(s, used); });
}

Args parse(int argc, char **argv) {
  Args a;
  std::vector<std::string> words(argv + 1, argv + argc);
  if (words.empty()) throw UsageError("the following arguments are required: command (run or profile)");
  a.command = words[0];
  if (a.command == "-h" || a.command == "--help") {
    std::fputs(USAGE, stdout);
    std::exit(0);
  }
  if (a.command != "run" && a.command != "profile")
    throw UsageError("argument command: invalid choice: '" + a.command + "' (choose from 'run', 'profile')");
  const bool run = a.command == "run";
  // flags that take a value, and which command has them
  const std::map<std::string, bool> valued = {
      {"--engine", true},  {"--policy", true},        {"--context", run},     {"--store", run},
      {"--question", run}, {"--max-new-tokens", run}, {"--temperature", run}, {"--top-p", run},
      {"--seed", run},     {"--tokens", !run},        {"--budget", !run}};
  const std::map<std::string, bool> switches = {
      {"--replace", run}, {"--sources", run}, {"--token-ids", run}, {"--json", !run}};
  bool has_bundle = false;
  for (size_t i = 1; i < words.size(); ++i) {
    std::string flag = words[i], value;
    if (flag == "-h" || flag == "--help") {
      std::fputs(USAGE, stdout);
      std::exit(0);
    }
    if (flag.rfind("--", 0) != 0) {
      if (has_bundle) throw UsageError("unrecognized arguments: " + flag);
      a.bundle = flag, has_bundle = true;
      continue;
    }
    const size_t eq = flag.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) value = flag.substr(eq + 1), flag = flag.substr(0, eq);
    if (auto s = switches.find(flag); s != switches.end() && s->second && !inline_value) {
      (flag == "--replace"   ? a.replace
       : flag == "--sources" ? a.sources
       : flag == "--json"    ? a.json
                             : a.token_ids) = true;
      continue;
    }
    auto v = valued.find(flag);
    if (v == valued.end() || !v->second) throw UsageError("unrecognized arguments: " + words[i]);
    if (!inline_value) {
      if (i + 1 >= words.size()) throw UsageError("argument " + flag + ": expected one argument");
      value = words[++i];
    }
    if (flag == "--engine") {
      if (value != "auto" && value != "executorch" && value != "torch" && value != "onnx")
        throw UsageError("argument --engine: invalid choice: '" + value +
                         "' (choose from 'auto', 'torch', 'executorch', 'onnx')");
      a.engine = value;
    } else if (flag == "--policy") {
      bool known = false;
      for (size_t k = 0; acre_policy_name(k); ++k) known = known || value == acre_policy_name(k);
      if (!known)
        throw UsageError("argument --policy: invalid choice: '" + value +
                         "' (choose from 'full', 'streaming', 'infinipot', 'acre')");
      a.policy = value;
    } else if (flag == "--context") {
      a.context = value, a.has_context = true;
    } else if (flag == "--store") {
      a.store = value, a.has_store = true;
    } else if (flag == "--question") {
      a.question = value, a.has_question = true;
    } else if (flag == "--max-new-tokens") {
      a.max_new_tokens = to_int(flag, value);
    } else if (flag == "--temperature") {
      a.temperature = to_float(flag, value);
    } else if (flag == "--top-p") {
      a.top_p = to_float(flag, value);
    } else if (flag == "--seed") {
      const int64_t seed = to_int(flag, value);
      if (seed < 0) throw UsageError("argument --seed: must be a non-negative integer (numpy's default_rng)");
      a.seed = static_cast<uint64_t>(seed), a.has_seed = true;
    } else if (flag == "--tokens") {
      a.tokens = to_int(flag, value), a.has_tokens = true;
    } else {
      a.budget = value;
    }
  }
  if (!has_bundle) throw UsageError("the following arguments are required: bundle");
  if (run && !a.has_question) throw UsageError("the following arguments are required: --question");
  if (!run && !a.has_tokens) throw UsageError("the following arguments are required: --tokens");
  return a;
}

// ---- the document ----------------------------------------------------------------------------

bool valid_utf8(const std::string &s) {
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (!n || i + n > s.size()) return false;
    uint32_t c = n == 1 ? b : b & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto cb = static_cast<unsigned char>(s[i + k]);
      if ((cb & 0xC0) != 0x80) return false;
      c = (c << 6) | (cb & 0x3F);
    }
    const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < least[n] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;  // overlong, surrogate
    i += n;
  }
  return true;
}

std::string lower_extension(const std::string &path) {
  const size_t slash = path.find_last_of('/'), dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  std::string e = path.substr(dot);
  for (char &c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

// acre.documents.read_document for plain text: the file's bytes as they are (a UTF-8 BOM dropped).
// Markdown, HTML and PDF are converted by the Python host (html.parser, pypdf); refused here by name.
std::string read_document(const std::string &path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw Error(ACRE_ERR_INVALID_ARGUMENT, path + ": context file not found");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  if (!in && !in.eof()) throw Error(ACRE_ERR_INVALID_ARGUMENT, path + ": cannot be read");
  std::string data = s.str();
  const std::string ext = lower_extension(path);
  const std::string head = data.substr(0, 1024);
  const size_t lead = head.find_first_not_of(" \t\n\r\f\v");
  if (ext == ".pdf" || (lead != std::string::npos && head.compare(lead, 5, "%PDF-") == 0))
    throw Error(ACRE_ERR_INVALID_ARGUMENT,
                path +
                    ": a PDF, which acre-cli does not read (the Python acre reads it "
                    "through pypdf); convert it to plain text first");
  if (data.compare(0, 4, "PK\x03\x04") == 0)
    throw Error(ACRE_ERR_INVALID_ARGUMENT,
                path +
                    ": a ZIP-based file (.docx, .epub, .odt, ...), which acre does "
                    "not read; convert it to plain text (UTF-8)");
  if (ext == ".md" || ext == ".markdown" || ext == ".html" || ext == ".htm" || ext == ".xhtml")
    throw Error(ACRE_ERR_INVALID_ARGUMENT,
                path + ": " + ext.substr(1) +
                    ", which acre-cli does not convert (the Python acre turns it into paragraphs); give "
                    "plain text (UTF-8)");
  if (data.substr(0, 8192).find('\0') != std::string::npos)
    throw Error(ACRE_ERR_INVALID_ARGUMENT, path + ": a binary file, not a document; give plain text (UTF-8)");
  if (data.compare(0, 3, "\xEF\xBB\xBF") == 0) data.erase(0, 3);  // Python's utf-8-sig
  if (!valid_utf8(data))
    throw Error(ACRE_ERR_INVALID_ARGUMENT, path + ": not UTF-8 text; convert it to UTF-8 first");
  if (acre_host::blank(data)) throw Error(ACRE_ERR_INVALID_ARGUMENT, path + ": the document has no text");
  return data;
}

// ---- formatting as Python's f-strings do --------------------------------------------------------

std::string commas(int64_t n) {  // f"{n:,}"
  std::string digits = std::to_string(n < 0 ? -n : n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string fixed(double x, int places) {  // f"{x:,.Nf}"
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", places, std::fabs(x));
  std::string s(buf);
  const size_t dot = s.find('.');
  std::string whole = commas(std::stoll(s.substr(0, dot)));
  return (x < 0 && std::stod(s) != 0 ? "-" : "") + whole + (dot == std::string::npos ? "" : s.substr(dot));
}

std::string mib(double bytes) { return fixed(bytes / (1 << 20), 1) + " MiB"; }

// ---- the process ----------------------------------------------------------------------------

int64_t proc_status(const char *field) {  // bytes from /proc/self/status (Linux), 0 elsewhere
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string key = std::string(field) + ":";
  while (std::getline(in, line))
    if (line.compare(0, key.size(), key) == 0) return std::stoll(line.substr(key.size())) * 1024;
  return 0;
}

// ---- the session ----------------------------------------------------------------------------

struct Bundle {
  acre_bundle *handle = nullptr;
  explicit Bundle(const std::string &dir) { check(acre_bundle_open(dir.c_str(), 1, &handle)); }
  ~Bundle() { acre_bundle_free(handle); }
};

void check_engine(const Args &a) {
  if (a.engine == "torch" || a.engine == "onnx")
    throw Error(ACRE_ERR_UNSUPPORTED, "--engine " + a.engine +
                                          " runs in the Python acre only; acre-cli runs the bundle's "
                                          "ExecuTorch program (--engine executorch or auto)");
}

int32_t show_progress(void *, int64_t done, int64_t total) {
  std::fprintf(stderr, "\ringest: %s/%s tok", commas(done).c_str(), commas(total).c_str());
  if (done >= total) std::fputc('\n', stderr);
  return 0;
}

// acre.runtime.cli.open_session: the document of --context ingested (or reopened from --store), or --store.
int64_t open_document(const Args &a, acre_host::Session &s) {
  if (a.replace && !a.has_context)
    throw Error(ACRE_ERR_INVALID_ARGUMENT,
                "--replace needs --context FILE: the document to ingest in the store's place");
  if (!a.has_context && !a.has_store)
    throw Error(ACRE_ERR_INVALID_ARGUMENT,
                "give --context FILE (or --store DIR of a document ingested before)");
  int64_t n = 0;
  if (!a.has_context) {
    check(acre_session_open_document(s.session, a.store.c_str(), &n));
    std::fprintf(stderr, "opened %s: %s tokens, no re-ingest\n", a.store.c_str(), commas(n).c_str());
    return n;
  }
  const std::string text = read_document(a.context);
  std::vector<int32_t> offsets;
  const std::vector<int32_t> ids = s.document_prompt(text, offsets);
  const acre_document doc{ids.data(), ids.size(), text.data(), text.size(), offsets.data()};
  check(acre_session_ingest(s.session, &doc, a.has_store ? a.store.c_str() : nullptr, 1, a.replace,
                            isatty(2) ? show_progress : nullptr, nullptr, &n));
  const int64_t resumed = acre_session_resumed_from(s.session);
  if (resumed == n)
    std::fprintf(stderr, "%s already holds this document: reopened, no re-ingest\n", a.store.c_str());
  else if (resumed > 0)
    std::fprintf(stderr, "resumed an interrupted ingest at token %s\n", commas(resumed).c_str());
  return n;
}

// The answer's text pieces as they come (acre.runtime.Session._pieces): the decoded answer so far, less
// what was shown, held back while it ends in an unfinished multi-byte character (U+FFFD).
struct Answer {
  std::vector<int32_t> ids;
  std::string shown;
  std::string next(const acre_host::Session &s, int32_t token) {
    ids.push_back(token);
    const std::string text = acre_host::decode(s.tokenizer, ids, true);
    if (text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0) return "";
    std::string piece = text.substr(std::min(shown.size(), text.size()));
    shown = text;
    return piece;
  }
};

// Asks the question and streams the answer to stdout; the seconds until its first piece, or 0.
double ask(const Args &a, acre_host::Session &s, const std::string &question, Answer &answer) {
  const Clock::time_point started = Clock::now();
  const std::vector<int32_t> ids = s.question_prompt(question);
  const acre_decoding decoding{
      static_cast<int32_t>(a.max_new_tokens), a.temperature, a.top_p, a.has_seed ? 1 : 0, a.seed, 1};
  check(acre_session_ask(s.session, ids.data(), ids.size(), nullptr, 0, nullptr, 0, &decoding));
  double first = 0;
  for (int32_t token = 0;;) {
    check(acre_session_next(s.session, &token));
    if (token < 0) break;
    const std::string piece = answer.next(s, token);
    if (piece.empty()) continue;
    if (first == 0) first = std::chrono::duration<double>(Clock::now() - started).count();
    std::fwrite(piece.data(), 1, piece.size(), stdout);
    std::fflush(stdout);
  }
  return first;
}

// acre.runtime.profiler.session_profile.
json session_profile(const acre_host::Session &s) {
  acre_geometry g{};
  check(acre_bundle_geometry(s.bundle, &g));
  acre_layout layout{};
  check(acre_session_layout(s.session, &layout));
  acre_array ids{}, text{}, offsets{};
  check(acre_session_document(s.session, &ids, &text, &offsets));
  acre_store *store = nullptr;
  check(acre_session_store(s.session, &store));
  const uint64_t disk = store ? acre_store_disk_bytes(store) : 0;
  acre_store_free(store);
  acre_question q{};
  const bool asked = acre_session_last(s.session, &q) == ACRE_OK;
  const char *program = nullptr;
  struct stat st {};
  const int64_t program_bytes =
      acre_bundle_program_path(s.bundle, "executorch", &program) == ACRE_OK && stat(program, &st) == 0
          ? st.st_size
          : 0;
  const int64_t slot_bytes =
      int64_t(g.layers) * g.kv_heads * g.head_dim * 2 * int64_t(acre_dtype_size(g.kv_dtype)) + 8 + 1 + 1 + 8;
  const json policy = json::parse(acre_session_policy_json(s.session));
  return json{
      {"engine", acre_engine_name(s.engine)},
      {"policy", policy["name"]},
      {"pot_slots", acre_pot_capacity(s.pot)},
      {"pot_regions",
       {{"sink", layout.sink},
        {"l1", layout.l1},
        {"recent", layout.recent},
        {"refill", layout.refill},
        {"question", layout.question}}},
      {"pot_bytes", acre_pot_bytes(s.pot)},
      {"slot_bytes", slot_bytes},
      {"index_bytes", acre_session_index_bytes(s.session)},
      {"document_tokens", ids.data ? ids.info.dims[0] : 0},
      {"l2_disk_bytes", disk},
      {"l2_bytes_read_last_question", asked ? q.bytes_read : 0},
      {"l2_read_seconds_last_question", asked ? std::round(q.read_s * 1e6) / 1e6 : 0.0},
      {"spans_refilled_last_question", asked ? q.n_spans : 0},
      {"program_bytes", program_bytes},
      {"peak_rss_bytes", proc_status("VmHWM")},
  };
}

// acre.runtime.profiler.format_profile, without the prediction (see profile below).
std::string format_profile(const json &r, int64_t budget) {
  std::string regions;
  for (const auto &[name, slots] : r["pot_regions"].items())
    if (slots.get<int64_t>())
      regions += (regions.empty() ? "" : ", ") + name + " " + std::to_string(slots.get<int64_t>());
  std::string document = commas(r["document_tokens"].get<int64_t>()) + " tokens";
  if (r.contains("ingest_tok_s"))
    document += ", ingested at " + fixed(r["ingest_tok_s"].get<double>(), 1) + " tok/s";
  std::vector<std::pair<std::string, std::string>> rows = {
      {"engine / policy", r["engine"].get<std::string>() + " / " + r["policy"].get<std::string>()},
      {"document", document},
      {"pot (RAM, fixed)", commas(r["pot_slots"].get<int64_t>()) + " slots x " +
                               commas(r["slot_bytes"].get<int64_t>()) +
                               " B = " + mib(r["pot_bytes"].get<double>()) + " (" + regions + ")"},
      {"span index (RAM)", mib(r["index_bytes"].get<double>())},
      {"L2 on flash", mib(r["l2_disk_bytes"].get<double>())},
      {"L2 read, last question",
       commas(r["l2_bytes_read_last_question"].get<int64_t>()) + " B (" +
           std::to_string(r["spans_refilled_last_question"].get<int64_t>()) + " spans) in " +
           fixed(r["l2_read_seconds_last_question"].get<double>() * 1e3, 2) + " ms"},
      {"program file", mib(r["program_bytes"].get<double>())},
  };
  if (r.contains("measured"))
    for (const auto &[part, bytes] : r["measured"].items())
      rows.push_back({"  " + part + " (measured)", mib(bytes.get<double>())});
  rows.push_back({"peak RSS (process)", mib(r["peak_rss_bytes"].get<double>())});
  if (budget > 0) {
    const int64_t peak = r["peak_rss_bytes"].get<int64_t>();
    rows.push_back({"budget (whole process)",
                    peak <= budget
                        ? mib(double(budget)) + ": fits (measured peak " + mib(double(peak)) + ")"
                        : mib(double(budget)) + ": OVER by " + mib(double(peak - budget)) +
                              " (measured peak; `acre profile` also predicts it and names a pot that fits)"});
  }
  size_t width = 0;
  for (const auto &row : rows) width = std::max(width, row.first.size());
  std::string out;
  for (const auto &[name, value] : rows)
    out += (out.empty() ? "" : "\n") + std::string("  ") + name + std::string(width - name.size(), ' ') +
           "  " + value;
  return out;
}

// acre.runtime.cli.format_sources.
std::string format_sources(const acre_host::Session &s) {
  acre_array ids{}, text{}, offsets{};
  check(acre_session_document(s.session, &ids, &text, &offsets));
  const std::vector<int64_t> sources = s.last_sources();
  if (!sources.empty()) {
    const std::string doc(static_cast<const char *>(text.data), text.info.bytes);
    std::vector<size_t> byte_at;  // code point index -> byte offset
    for (size_t b = 0; b < doc.size(); ++b)
      if ((static_cast<unsigned char>(doc[b]) & 0xC0) != 0x80) byte_at.push_back(b);
    byte_at.push_back(doc.size());
    const size_t n = sources.size() / 2;
    std::string out =
        "sources (" + std::to_string(n) + " passage" + (n > 1 ? "s" : "") + " of the document):";
    for (size_t i = 0; i < n; ++i) {
      const int64_t start = sources[2 * i], end = sources[2 * i + 1];
      out += "\n[" + std::to_string(i + 1) + "] characters " + commas(start) + "-" + commas(end);
      const std::string passage = doc.substr(byte_at[start], byte_at[end] - byte_at[start]);
      // str.splitlines: \n, \r, \r\n, \v, \f, \x1c-\x1e, U+0085, U+2028, U+2029
      static const std::regex line_break("\r\n|[\n\r\v\f\x1c\x1d\x1e]|\xC2\x85|\xE2\x80\xA8|\xE2\x80\xA9");
      std::sregex_token_iterator it(passage.begin(), passage.end(), line_break, -1), stop;
      for (; it != stop; ++it) out += "\n    " + it->str();
    }
    return out;
  }
  const json policy = json::parse(acre_session_policy_json(s.session));
  if (!policy["refill"].get<bool>())
    return "sources: none (policy " + policy["name"].get<std::string>() + " refills no passages)";
  if (!text.data)
    return "sources: unknown (this store keeps no document text: ingested from token ids or by an older "
           "acre; "
           "ingest it again with --context FILE --replace)";
  return "sources: none (no passage of the document was refilled for this question)";
}

int run(const Args &a) {
  check_engine(a);
  Bundle bundle(a.bundle);
  acre_host::Session s(bundle.handle, a.policy.c_str(), nullptr);
  open_document(a, s);
  if (acre_host::blank(a.question)) throw Error(ACRE_ERR_INVALID_ARGUMENT, "the question is empty");
  std::printf("Q: %s\nA: ", a.question.c_str());
  std::fflush(stdout);
  Answer answer;
  const double first = ask(a, s, a.question, answer);
  if (a.token_ids) {
    std::string line = "token ids:";
    for (int32_t id : answer.ids) line += " " + std::to_string(id);
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  if (a.sources) std::printf("\n\n%s", format_sources(s).c_str());
  std::printf("\n\nmemory profile (first answer token after %.2f s)\n%s\n", first,
              format_profile(session_profile(s), 0).c_str());
  return 0;
}

// acre.budget.parse_bytes: "48MB", "1.5GB", "512KiB" or a plain number of MiB.
int64_t parse_bytes(const std::string &text) {
  static const std::regex form(R"(\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*)");
  static const std::map<std::string, double> units = {{"", 1 << 20},    {"B", 1},        {"KB", 1 << 10},
                                                      {"KIB", 1 << 10}, {"MB", 1 << 20}, {"MIB", 1 << 20},
                                                      {"GB", 1 << 30},  {"GIB", 1 << 30}};
  std::smatch m;
  std::string unit;
  if (std::regex_match(text, m, form)) {
    unit = m[2].str();
    for (char &c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  if (m.empty() || !units.count(unit))
    throw Error(ACRE_ERR_INVALID_ARGUMENT,
                "cannot read the budget '" + text + "'; write it like 48MB or 1.5GB");
  return static_cast<int64_t>(std::stod(m[1].str()) * units.at(unit));
}

// acre.haystack.passkey_document(tokenizer, tokens, 0.5, key): the filler cut to `tokens` tokens, the pass
// key's sentence at the sentence end nearest before the middle. The filler is ASCII, so bytes are characters.
std::string passkey_document(const acre_tokenizer *tokenizer, int64_t tokens, const std::string &key) {
  const std::string filler =
      "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";
  const int64_t per_copy =
      std::max<int64_t>(1, static_cast<int64_t>(acre_host::encode(tokenizer, filler).size()));
  std::string text;
  for (int64_t i = 0; i < tokens / per_copy + 1; ++i) text += filler;
  std::vector<int32_t> ids = acre_host::encode(tokenizer, text);
  ids.resize(std::min<size_t>(ids.size(), static_cast<size_t>(tokens)));
  text = acre_host::decode(tokenizer, ids, false);
  // the last sentence end (". ", "! ", "? ", or one followed by line breaks) before the middle; the
  // filler has no abbreviations (haystack._ABBREVIATIONS) and no quotes
  const size_t limit = static_cast<size_t>(static_cast<double>(text.size()) * 0.5);
  size_t cut = 0;
  for (size_t i = 0; i + 1 < limit; ++i) {
    if (text[i] != '.' && text[i] != '!' && text[i] != '?') continue;
    size_t end = i + 1;
    if (text[end] == ' ')
      ++end;
    else
      while (end < limit && text[end] == '\n') ++end;
    if (end > i + 1 && end <= limit) cut = end;
  }
  return text.substr(0, cut) + "The pass key is " + key + ". Remember it. " + key + " is the pass key. " +
         text.substr(cut);
}

// acre.runtime.profiler.measure: what the runtime and the program hold before any document (the program
// after one prefill step), then a `tokens`-token pass-key document ingested into a temporary store and
// one question asked. The Python profile also predicts the peak from the geometry (acre/memory.py, its
// constants are the Python process's); this one reports what it measured.
int profile(const Args &a) {
  check_engine(a);
  if (a.tokens < 1) throw Error(ACRE_ERR_INVALID_ARGUMENT, "--tokens must be positive");
  const int64_t budget = a.budget.empty() ? 0 : parse_bytes(a.budget);
  const int64_t runtime = proc_status("VmRSS");
  Bundle bundle(a.bundle);
  acre_host::Session s(bundle.handle, a.policy.c_str(), nullptr);
  acre_geometry g{};
  check(acre_bundle_geometry(bundle.handle, &g));
  const std::vector<int32_t> zeros(static_cast<size_t>(g.chunk), 0);
  std::vector<acre_array> outputs(acre_engine_num_outputs(s.engine));
  check(acre_session_step(s.session, zeros.data(), zeros.size(), 0, outputs.data(), outputs.size()));
  const int64_t program = proc_status("VmRSS") - runtime;

  const std::string document = passkey_document(s.tokenizer, a.tokens, "72904");
  std::vector<int32_t> offsets;
  const std::vector<int32_t> ids = s.document_prompt(document, offsets);
  const acre_document doc{ids.data(), ids.size(), document.data(), document.size(), offsets.data()};
  Clock::time_point started = Clock::now();
  int64_t n = 0;
  check(acre_session_ingest(s.session, &doc, nullptr, 1, 0, nullptr, nullptr, &n));  // a temporary store
  const double ingest_s = std::chrono::duration<double>(Clock::now() - started).count();
  started = Clock::now();
  const std::vector<int32_t> question = s.question_prompt("What is the pass key?");
  const acre_decoding decoding{16, 0.0, 1.0, 0, 0, 1};
  check(acre_session_ask(s.session, question.data(), question.size(), nullptr, 0, nullptr, 0, &decoding));
  std::vector<int32_t> answer_ids;
  for (int32_t token = 0;;) {
    check(acre_session_next(s.session, &token));
    if (token < 0) break;
    answer_ids.push_back(token);
  }
  const std::string answer = acre_host::decode(s.tokenizer, answer_ids, true);
  json report = session_profile(s);
  report["ingest_tok_s"] = std::round(double(n) / ingest_s * 10) / 10;
  report["answer_s"] = std::round(std::chrono::duration<double>(Clock::now() - started).count() * 100) / 100;
  report["answer"] = answer;
  report["answer_correct"] = answer.find("72904") != std::string::npos;
  report["measured"] = {{"runtime", runtime},
                        {"program", program},
                        {"pot", report["pot_bytes"]},
                        {"span index", report["index_bytes"]}};
  if (a.json) {
    report["budget_bytes"] = budget > 0 ? json(budget) : json(nullptr);
    std::printf("%s\n", report.dump(2, ' ', true).c_str());
  } else {
    std::printf("%s\n", format_profile(report, budget).c_str());
  }
  return budget > 0 && report["peak_rss_bytes"].get<int64_t>() > budget ? 1 : 0;
}

}  // namespace

int main(int argc, char **argv) {
  Args args;
  try {
    args = parse(argc, argv);
  } catch (const UsageError &e) {
    std::fprintf(stderr, "%sacre-cli: error: %s\n", USAGE, e.what());
    return 2;
  }
  try {
    return args.command == "run" ? run(args) : profile(args);
  } catch (const Error &e) {
    std::fflush(stdout);
    std::fprintf(stderr, "acre-cli: error: %s\n", e.what());
  } catch (const std::exception &e) {  // out of memory, or a bug: still a message and a status
    std::fflush(stdout);
    std::fprintf(stderr, "acre-cli: error: %s\n", e.what());
  }
  return 2;
}
