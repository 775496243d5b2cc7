// libacre_jni: the JNI binding of the core (acre.h) for org.acre.Native. It converts and does nothing
// else: handles are jlongs owned by the Java objects (Bundle, Session), strings cross as UTF-16 and
// become UTF-8 here, and a failed status becomes the org.acre exception of its kind carrying
// acre_last_error()'s message. No C++ type and no C++ exception crosses into Java.
#include <jni.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "acre.h"
#include "host.hpp"

namespace {

using acre_host::check;
using acre_host::Error;

// A session with everything it borrows from the core (the bundle is the Java Bundle's, kept alive by the
// Java Session) and the host's prompting: native/host/host.hpp.
using Session = acre_host::Session;

const char *exception_class(acre_status status) {
  switch (status) {
    case ACRE_ERR_INVALID_ARGUMENT:
    case ACRE_ERR_BUFFER_TOO_SMALL: return "org/acre/InputException";
    case ACRE_ERR_BUNDLE: return "org/acre/BundleException";
    case ACRE_ERR_TOKENIZER: return "org/acre/TokenizerException";
    case ACRE_ERR_ENGINE: return "org/acre/EngineException";
    case ACRE_ERR_STORE: return "org/acre/StoreException";
    case ACRE_ERR_CANCELLED: return "org/acre/CancelledException";
    default: return "org/acre/AcreException";
  }
}

// UTF-8 <-> Java's UTF-16 (not JNI's modified UTF-8); a lone surrogate becomes U+FFFD.
std::string utf8(JNIEnv *env, jstring s) {
  const jsize n = env->GetStringLength(s);
  std::vector<jchar> u(static_cast<size_t>(n));
  env->GetStringRegion(s, 0, n, u.data());
  std::string out;
  out.reserve(u.size());
  for (size_t i = 0; i < u.size(); ++i) {
    uint32_t c = u[i];
    if (c >= 0xD800 && c <= 0xDBFF && i + 1 < u.size() && u[i + 1] >= 0xDC00 && u[i + 1] <= 0xDFFF)
      c = 0x10000 + ((c - 0xD800) << 10) + (u[++i] - 0xDC00);
    else if (c >= 0xD800 && c <= 0xDFFF)
      c = 0xFFFD;
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xC0 | (c >> 6)), out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xE0 | (c >> 12)), out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (c >> 18)), out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3F)), out += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  return out;
}

jstring jstr(JNIEnv *env, const std::string &s) {  // of UTF-8 (invalid bytes become U+FFFD)
  std::vector<jchar> u;
  u.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    const size_t n = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    uint32_t c = n == 1 ? b : n ? b & (0x7F >> n) : 0xFFFD;
    bool ok = n != 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) {
      const auto cb = static_cast<unsigned char>(s[i + k]);
      ok = (cb & 0xC0) == 0x80;
      c = (c << 6) | (cb & 0x3F);
    }
    if (!ok) c = 0xFFFD;
    i += ok ? n : 1;
    if (c >= 0x10000) {
      u.push_back(static_cast<jchar>(0xD800 + ((c - 0x10000) >> 10)));
      u.push_back(static_cast<jchar>(0xDC00 + ((c - 0x10000) & 0x3FF)));
    } else {
      u.push_back(static_cast<jchar>(c));
    }
  }
  return env->NewString(u.data(), static_cast<jsize>(u.size()));
}

void throw_java(JNIEnv *env, acre_status status, const std::string &message) {
  if (env->ExceptionCheck()) return;  // a Java exception is already on its way
  jclass cls = env->FindClass(exception_class(status));
  if (!cls) return;  // FindClass threw NoClassDefFoundError
  jmethodID init = env->GetMethodID(cls, "<init>", "(Ljava/lang/String;)V");
  jstring text = jstr(env, message);
  if (init && text) {
    auto *e = static_cast<jthrowable>(env->NewObject(cls, init, text));
    if (e) env->Throw(e);
  }
}

// Runs f; a host Error, the core's status or a C++ exception becomes a Java exception (f's value is
// then `failed`).
template <typename T, typename F>
T guarded(JNIEnv *env, T failed, F &&f) {
  try {
    return f();
  } catch (const Error &e) {
    throw_java(env, e.status, e.what());
  } catch (const std::bad_alloc &) {
    throw_java(env, ACRE_ERR_INTERNAL, "out of memory");
  } catch (const std::exception &e) {
    throw_java(env, ACRE_ERR_INTERNAL, e.what());
  }
  return failed;
}

Session *session_of(jlong handle) {
  if (!handle) throw Error(ACRE_ERR_INVALID_ARGUMENT, "the session is closed");
  return reinterpret_cast<Session *>(handle);
}

const acre_bundle *bundle_of(jlong handle) {
  if (!handle) throw Error(ACRE_ERR_INVALID_ARGUMENT, "the bundle is closed");
  return reinterpret_cast<const acre_bundle *>(handle);
}

template <typename T>
jintArray int_array(JNIEnv *env, const T *data, size_t n) {
  std::vector<jint> v(data, data + n);
  jintArray a = env->NewIntArray(static_cast<jsize>(n));
  if (a) env->SetIntArrayRegion(a, 0, static_cast<jsize>(n), v.data());
  return a;
}

template <typename T>
jlongArray long_array(JNIEnv *env, const T *data, size_t n) {
  std::vector<jlong> v(data, data + n);
  jlongArray a = env->NewLongArray(static_cast<jsize>(n));
  if (a) env->SetLongArrayRegion(a, 0, static_cast<jsize>(n), v.data());
  return a;
}

// An ingest's progress callback: org.acre.Progress.progress(done, total); a Java exception it throws
// stops the ingest and is thrown again when the core returns.
struct Progress {
  JNIEnv *env;
  jobject listener;
  jmethodID method;
  jthrowable raised = nullptr;
};

int32_t call_progress(void *user, int64_t done, int64_t total) {
  auto *p = static_cast<Progress *>(user);
  if (!p->listener) return 0;
  p->env->CallVoidMethod(p->listener, p->method, static_cast<jlong>(done), static_cast<jlong>(total));
  if (p->env->ExceptionCheck()) {
    p->raised = p->env->ExceptionOccurred();
    p->env->ExceptionClear();
    return 1;
  }
  return 0;
}

}  // namespace

extern "C" {

JNIEXPORT jint JNICALL Java_org_acre_Native_abiVersion(JNIEnv *, jclass) { return acre_abi_version(); }

// The chat templates the binding renders: text, prefix, suffix, text, ... (for the tests).
JNIEXPORT jobjectArray JNICALL Java_org_acre_Native_knownTemplates(JNIEnv *env, jclass) {
  return guarded<jobjectArray>(env, nullptr, [&]() -> jobjectArray {
    const std::vector<std::string> texts = acre_host::known_templates();
    jobjectArray a =
        env->NewObjectArray(static_cast<jsize>(texts.size()), env->FindClass("java/lang/String"), nullptr);
    for (size_t i = 0; a && i < texts.size(); ++i) {
      jstring s = jstr(env, texts[i]);
      env->SetObjectArrayElement(a, static_cast<jsize>(i), s);
      env->DeleteLocalRef(s);
    }
    return a;
  });
}

JNIEXPORT jlong JNICALL Java_org_acre_Native_bundleOpen(JNIEnv *env, jclass, jstring dir, jboolean verify) {
  return guarded<jlong>(env, 0, [&] {
    acre_bundle *b = nullptr;
    check(acre_bundle_open(utf8(env, dir).c_str(), verify ? 1 : 0, &b));
    return reinterpret_cast<jlong>(b);
  });
}

JNIEXPORT void JNICALL Java_org_acre_Native_bundleFree(JNIEnv *, jclass, jlong handle) {
  acre_bundle_free(reinterpret_cast<acre_bundle *>(handle));
}

JNIEXPORT jstring JNICALL Java_org_acre_Native_bundleManifest(JNIEnv *env, jclass, jlong handle) {
  return guarded<jstring>(env, nullptr,
                          [&] { return jstr(env, acre_bundle_manifest_json(bundle_of(handle))); });
}

JNIEXPORT jlong JNICALL Java_org_acre_Native_sessionNew(JNIEnv *env, jclass, jlong bundle_handle,
                                                        jstring policy, jstring switches_json) {
  return guarded<jlong>(env, 0, [&] {
    auto s = std::make_unique<Session>(bundle_of(bundle_handle), utf8(env, policy).c_str(),
                                       utf8(env, switches_json).c_str());
    return reinterpret_cast<jlong>(s.release());
  });
}

JNIEXPORT void JNICALL Java_org_acre_Native_sessionFree(JNIEnv *, jclass, jlong handle) {
  delete reinterpret_cast<Session *>(handle);
}

JNIEXPORT jstring JNICALL Java_org_acre_Native_sessionFingerprint(JNIEnv *env, jclass, jlong handle) {
  return guarded<jstring>(env, nullptr,
                          [&] { return jstr(env, acre_bundle_fingerprint(session_of(handle)->bundle)); });
}

JNIEXPORT jlong JNICALL Java_org_acre_Native_sessionIngest(JNIEnv *env, jclass, jlong handle, jstring text,
                                                           jstring store, jboolean resume, jboolean replace,
                                                           jobject listener) {
  return guarded<jlong>(env, 0, [&] {
    Session *s = session_of(handle);
    const std::string document = utf8(env, text);
    std::vector<int32_t> offsets;
    const std::vector<int32_t> ids = s->document_prompt(document, offsets);
    const acre_document doc{ids.data(), ids.size(), document.data(), document.size(), offsets.data()};
    Progress progress{env, listener, nullptr};
    if (listener) {
      jclass cls = env->GetObjectClass(listener);
      progress.method = env->GetMethodID(cls, "progress", "(JJ)V");
      if (!progress.method) return jlong{0};  // NoSuchMethodError pending
    }
    const std::string dir = store ? utf8(env, store) : std::string();
    int64_t n = 0;
    const acre_status status = acre_session_ingest(s->session, &doc, store ? dir.c_str() : nullptr, resume,
                                                   replace, call_progress, &progress, &n);
    if (progress.raised) {
      env->Throw(progress.raised);
      return jlong{0};
    }
    check(status);
    return static_cast<jlong>(n);
  });
}

JNIEXPORT jlong JNICALL Java_org_acre_Native_sessionOpenDocument(JNIEnv *env, jclass, jlong handle,
                                                                 jstring store) {
  return guarded<jlong>(env, 0, [&] {
    int64_t n = 0;
    check(acre_session_open_document(session_of(handle)->session, utf8(env, store).c_str(), &n));
    return static_cast<jlong>(n);
  });
}

JNIEXPORT void JNICALL Java_org_acre_Native_sessionCloseStore(JNIEnv *env, jclass, jlong handle) {
  guarded<int>(env, 0, [&] {
    acre_session_close_store(session_of(handle)->session);
    return 0;
  });
}

JNIEXPORT jlong JNICALL Java_org_acre_Native_sessionDocumentTokens(JNIEnv *env, jclass, jlong handle) {
  return guarded<jlong>(env, 0, [&] {
    acre_array ids{}, text{}, offsets{};
    check(acre_session_document(session_of(handle)->session, &ids, &text, &offsets));
    return static_cast<jlong>(ids.data ? ids.info.dims[0] : 0);
  });
}

JNIEXPORT jstring JNICALL Java_org_acre_Native_sessionDocumentText(JNIEnv *env, jclass, jlong handle) {
  return guarded<jstring>(env, nullptr, [&]() -> jstring {
    acre_array ids{}, text{}, offsets{};
    check(acre_session_document(session_of(handle)->session, &ids, &text, &offsets));
    if (!text.data) return nullptr;
    return jstr(env, std::string(static_cast<const char *>(text.data), text.info.bytes));
  });
}

JNIEXPORT jintArray JNICALL Java_org_acre_Native_sessionEncode(JNIEnv *env, jclass, jlong handle,
                                                               jstring text) {
  return guarded<jintArray>(env, nullptr, [&] {
    const std::vector<int32_t> ids = acre_host::encode(session_of(handle)->tokenizer, utf8(env, text));
    return int_array(env, ids.data(), ids.size());
  });
}

JNIEXPORT jstring JNICALL Java_org_acre_Native_sessionDecode(JNIEnv *env, jclass, jlong handle, jintArray ids,
                                                             jboolean skip_special) {
  return guarded<jstring>(env, nullptr, [&] {
    std::vector<int32_t> v(static_cast<size_t>(env->GetArrayLength(ids)));
    env->GetIntArrayRegion(ids, 0, static_cast<jsize>(v.size()), reinterpret_cast<jint *>(v.data()));
    return jstr(env, acre_host::decode(session_of(handle)->tokenizer, v, skip_special));
  });
}

JNIEXPORT void JNICALL Java_org_acre_Native_sessionAsk(JNIEnv *env, jclass, jlong handle, jstring question,
                                                       jint max_new_tokens, jdouble temperature,
                                                       jdouble top_p, jboolean has_seed, jlong seed) {
  guarded<int>(env, 0, [&] {
    Session *s = session_of(handle);
    const std::vector<int32_t> ids = s->question_prompt(utf8(env, question));
    const acre_decoding decoding{
        max_new_tokens, temperature, top_p, has_seed ? 1 : 0, static_cast<uint64_t>(seed), 1};
    check(acre_session_ask(s->session, ids.data(), ids.size(), nullptr, 0, nullptr, 0, &decoding));
    return 0;
  });
}

JNIEXPORT jint JNICALL Java_org_acre_Native_sessionNext(JNIEnv *env, jclass, jlong handle) {
  return guarded<jint>(env, -1, [&] {
    int32_t token = -1;
    check(acre_session_next(session_of(handle)->session, &token));
    return static_cast<jint>(token);
  });
}

JNIEXPORT jintArray JNICALL Java_org_acre_Native_sessionLastPromptIds(JNIEnv *env, jclass, jlong handle) {
  return guarded<jintArray>(env, nullptr, [&] {
    acre_question q{};
    check(acre_session_last(session_of(handle)->session, &q));
    return int_array(env, q.prompt_ids, q.n_prompt);
  });
}

JNIEXPORT jlongArray JNICALL Java_org_acre_Native_sessionLastSpans(JNIEnv *env, jclass, jlong handle) {
  return guarded<jlongArray>(env, nullptr, [&] {
    acre_question q{};
    check(acre_session_last(session_of(handle)->session, &q));
    return long_array(env, q.spans, q.n_spans);
  });
}

// The last question's sources: [start, end) code point pairs into the document text (flat).
JNIEXPORT jlongArray JNICALL Java_org_acre_Native_sessionLastSources(JNIEnv *env, jclass, jlong handle) {
  return guarded<jlongArray>(env, nullptr, [&] {
    const std::vector<int64_t> out = session_of(handle)->last_sources();
    return long_array(env, out.data(), out.size());
  });
}

// What the memory profile reads: pot slots, pot bytes, the span index's bytes, the engine's planned
// activation bytes, the document's tokens, spans.bin's bytes on flash, and the last question's bytes read
// and spans refilled (0 before a question).
JNIEXPORT jlongArray JNICALL Java_org_acre_Native_sessionProfile(JNIEnv *env, jclass, jlong handle) {
  return guarded<jlongArray>(env, nullptr, [&] {
    Session *s = session_of(handle);
    acre_array ids{}, text{}, offsets{};
    check(acre_session_document(s->session, &ids, &text, &offsets));
    acre_store *store = nullptr;
    check(acre_session_store(s->session, &store));
    const uint64_t disk = store ? acre_store_disk_bytes(store) : 0;
    acre_store_free(store);
    acre_question q{};
    const bool asked = acre_session_last(s->session, &q) == ACRE_OK;
    const int64_t profile[] = {static_cast<int64_t>(acre_pot_capacity(s->pot)),
                               static_cast<int64_t>(acre_pot_bytes(s->pot)),
                               static_cast<int64_t>(acre_session_index_bytes(s->session)),
                               static_cast<int64_t>(acre_engine_planned_bytes(s->engine)),
                               ids.data ? ids.info.dims[0] : 0,
                               static_cast<int64_t>(disk),
                               asked ? static_cast<int64_t>(q.bytes_read) : 0,
                               asked ? static_cast<int64_t>(q.n_spans) : 0};
    return long_array(env, profile, sizeof profile / sizeof profile[0]);
  });
}

}  // extern "C"
