// swift-tools-version:5.9
// AcreKit: acre's native runtime core (../../native, C++17 behind native/include/acre.h) compiled by
// SwiftPM, and a thin Swift API over its C header, the way llama.cpp's Swift package wraps llama.h.
//
//   CPCRE2   PCRE2 10.42 (8-bit, Unicode, no JIT), the core tokenizer's regex engine; its sources are
//            put into Sources/CPCRE2/pcre2 by scripts/fetch_dependencies.sh (not committed)
//   CAcre    the core's sources (Sources/CAcre/core -> ../../../../native/src, a symlink) and acre.h
//            (Sources/CAcre/include/acre.h, a symlink) as the C module CAcre; OpenSSL's sha256 calls
//            through compat/openssl/evp.h over CommonCrypto; nlohmann/json.hpp in vendor/ (fetched too)
//   AcreKit  Swift: AcreBundle, Tokenizer, Engine (ExecuTorch, or a StepProgram through acre_step_fn),
//            Session (ingest, openDocument, ask streaming text pieces, sources), AcreError
//
// A local package (the demo adds it by path): `unsafeFlags` (-ffp-contract=off, which the core needs for
// span scores that are the same bits on every machine) is allowed for root and local packages only.
import PackageDescription

// PCRE2's library sources for an 8-bit build (its NON-AUTOTOOLS-BUILD list; pcre2_ucptables.c is
// #included by pcre2_tables.c, and pcre2_jit_compile.c compiles to stubs without SUPPORT_JIT).
let pcre2 = [
    "auto_possess", "chartables", "compile", "config", "context", "convert", "dfa_match", "error", "extuni",
    "find_bracket", "jit_compile", "maketables", "match", "match_data", "newline", "ord2utf", "pattern_info",
    "script_run", "serialize", "string_utils", "study", "substitute", "substring", "tables", "ucd",
    "valid_utf", "xclass",
].map { "pcre2/pcre2_\($0).c" }

let package = Package(
    name: "AcreKit",
    platforms: [.iOS(.v17), .macOS(.v14)],
    products: [
        .library(name: "AcreKit", targets: ["AcreKit"]),
    ],
    targets: [
        .target(
            name: "CPCRE2",
            path: "Sources/CPCRE2",
            sources: pcre2,
            publicHeadersPath: "include",
            cSettings: [
                .headerSearchPath("pcre2"),
                .define("HAVE_CONFIG_H"),  // pcre2/config.h: PCRE2's config.h.generic, as the script copies it
                .define("PCRE2_CODE_UNIT_WIDTH", to: "8"),
                .define("SUPPORT_UNICODE"),  // \p{L}, \p{N} of the GPT-2 pattern
                .define("HAVE_MEMMOVE"),
                .define("PCRE2_STATIC"),
                // no SUPPORT_JIT: iOS apps may not map executable memory; the core matches without JIT
            ]),
        .target(
            name: "CAcre",
            dependencies: ["CPCRE2"],
            path: "Sources/CAcre",
            sources: ["core"],
            publicHeadersPath: "include",
            cxxSettings: [
                .headerSearchPath("core"),
                .headerSearchPath("compat"),  // <openssl/evp.h> over CommonCrypto
                .headerSearchPath("vendor"),  // <nlohmann/json.hpp>
                // no ACRE_WITH_EXECUTORCH: acre_engine_open_executorch returns ACRE_ERR_UNSUPPORTED (README)
                .unsafeFlags(["-ffp-contract=off"]),
            ],
            linkerSettings: [.linkedLibrary("z")]),  // zlib: the SDK's libz (crc32)
        .target(name: "AcreKit", dependencies: ["CAcre"]),
        .testTarget(name: "AcreKitTests", dependencies: ["AcreKit"]),
    ],
    cxxLanguageStandard: .cxx17
)
