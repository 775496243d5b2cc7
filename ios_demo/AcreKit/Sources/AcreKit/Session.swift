import CAcre
import Foundation

/// The text before and after the user's message in the chat template's first user turn. The core does
/// not render chat templates (Jinja): the host does, once, and hands the two pieces here (the demo
/// renders them with swift-transformers). `.plain` is what the Python host uses without a template.
public struct ChatTemplate: Equatable {
    public var prefix: String
    public var suffix: String
    public init(prefix: String, suffix: String) {
        self.prefix = prefix
        self.suffix = suffix
    }
    public static let plain = ChatTemplate(prefix: "", suffix: "\n")
}

/// How an answer is decoded (`acre_decoding`): greedy for temperature <= 0, else from the top-p nucleus
/// with numpy's default_rng(seed) stream (nil: fresh entropy).
public struct Decoding {
    public var maxNewTokens = 256
    public var temperature = 0.0
    public var topP = 1.0
    public var seed: UInt64?
    public var stopAtEos = true
    public init(maxNewTokens: Int = 256, temperature: Double = 0, topP: Double = 1, seed: UInt64? = nil) {
        self.maxNewTokens = maxNewTokens
        self.temperature = temperature
        self.topP = topP
        self.seed = seed
    }
}

/// A passage of the document: [start, end) in Unicode scalars of its text (Python's str indices).
public struct Source: Equatable {
    public let start: Int
    public let end: Int
    public let text: String
}

/// What the last question chose and cost (`acre_session_last`), and its sources.
public struct Question {
    public var spans: [Int] = []  // refilled, in document order
    public var cores: [Int] = []  // what it is about: its core spans and the carried refilled
    public var spanScores: [Double] = []
    public var promptIds: [Int32] = []
    public var bytesRead: UInt64 = 0
    public var readSeconds = 0.0
    public var sources: [Source] = []
}

/// The memory a session holds, for the demo's profile.
public struct Profile {
    public let potBytes: Int
    public let potSlots: Int
    public let indexBytes: Int
    public let l2DiskBytes: Int
    public let spans: Int
    public let lastQuestionBytesRead: Int
    public let documentTokens: Int
    public let enginePlannedBytes: Int
}

/// One document in the pot and its L2 store, and questions answered from it (`acre_session_*`). The
/// core ingests, reopens, resumes, selects and refills spans, decodes and samples; this layer builds the
/// prompts (template, question), turns answer ids into text pieces and refilled spans into sources, as
/// acre/runtime/session.py does. Not thread-safe: use one session from one thread (or serial queue).
public final class Session {
    public let bundle: AcreBundle
    public let tokenizer: Tokenizer
    public let engine: Engine
    public let template: ChatTemplate
    /// The document's prompt ids (template prefix or BOS, then the text), as the core holds them.
    public private(set) var documentIds: [Int32] = []
    public private(set) var last = Question()

    private let core: Core
    private let bosId: Int32?
    private var text: [Unicode.Scalar]?  // the document's text and each id's scalar range, for sources
    private var offsets: [Int32] = []
    private var epoch: UInt64

    static let questionSeparator = "\n\n"

    /// A session of `policy` ("acre", "infinipot", "streaming", "full") with `switches` (a JSON object,
    /// e.g. `{"refill_mode": "reuse"}`) over `engine`. Spans of `spanTokens`, `reps` representatives,
    /// a checkpoint every `checkpointTokens` of an ingest; `codec` nil: the core's default.
    public init(
        bundle: AcreBundle, engine: Engine, template: ChatTemplate = .plain, policy: String = "acre",
        switches: String? = nil, spanTokens: Int = 64, reps: Int = 8, codec: String? = nil,
        checkpointTokens: Int = 4096, tokenizer: Tokenizer? = nil
    ) throws {
        self.bundle = bundle
        self.engine = engine
        self.template = template
        let tokenizer = try tokenizer ?? Tokenizer(bundle: bundle)
        self.tokenizer = tokenizer
        let core = Core(bundle: bundle, engine: engine, tokenizer: tokenizer)
        self.core = core
        let g = bundle.geometry
        try check(acre_pot_new(Int32(g.layers), Int32(g.kvHeads), Int32(g.pot), Int32(g.headDim), g.kvDtypeValue,
                               bundle.ropeInvFreq, bundle.ropeInvFreq.count, &core.pot))
        try check(acre_policy_new(policy, switches, &core.policy))
        let status: acre_status = withOptionalCString(codec) { codecC in
            bundle.fingerprint.withCString { fingerprintC in
                var config = acre_session_config(
                    span_tokens: Int32(spanTokens), reps: Int32(reps), codec: codecC,
                    checkpoint_tokens: Int64(checkpointTokens), fingerprint: fingerprintC, tokenizer: tokenizer.handle)
                return acre_session_new(bundle.handle, core.pot, core.policy, &config, &core.session)
            }
        }
        try check(status)
        try check(acre_session_set_engine(core.session, engine.handle))
        epoch = acre_session_epoch(core.session)

        // the template's tokens match the document's template, not its text: BM25 leaves them out
        let special = SpecialTokens(tokenizer: tokenizer, directory: bundle.tokenizerDirectory)
        bosId = special.bos
        var templateIds = Set(try tokenizer.encode(template.prefix + template.suffix))
        templateIds.formUnion(special.ids)
        let sorted = templateIds.sorted()
        try check(acre_session_set_template_ids(core.session, sorted, sorted.count))
    }

    /// The token the last ingest resumed at (its length when it reopened a finished store), nil if none.
    public var resumedFrom: Int? {
        let at = acre_session_resumed_from(core.session)
        return at < 0 ? nil : Int(at)
    }

    /// The last ingest reopened a finished store instead of ingesting.
    public var reopened: Bool { resumedFrom != nil && resumedFrom == documentIds.count }

    /// The tokens that end an answer (the bundle's eos_token_ids until set).
    public func setStopIds(_ ids: [Int32]) throws {
        try check(acre_session_set_stop_ids(core.session, ids, ids.count))
    }

    // MARK: - documents

    /// Ingests `text` (replacing any earlier document); returns its length in tokens. Its L2 goes to
    /// `store` (a temporary directory if nil). With `resume`, a store holding this document finished is
    /// reopened, an unfinished one continues from its last checkpoint; a store holding another document
    /// is refused (kind "store") unless `replace`. `progress(done, total)` after each chunk: false stops
    /// the ingest (an AcreError with isCancelled).
    @discardableResult
    public func ingest(
        _ text: String, store: URL? = nil, resume: Bool = true, replace: Bool = false,
        progress: ((Int, Int) -> Bool)? = nil
    ) throws -> Int {
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw AcreError.input("the document is empty")
        }
        var lead: [Int32] = []
        if !template.prefix.isEmpty {
            lead = try tokenizer.encode(template.prefix)
        } else if let bosId {
            lead = [bosId]
        }
        let (ids, byteOffsets) = try tokenizer.encodeWithByteOffsets(text)
        let all = lead + ids
        var offsets = [Int32](repeating: -1, count: 2 * lead.count)
        offsets += Session.scalarOffsets(Array(text.utf8), byteOffsets)
        var n: Int64 = 0
        let box = ProgressBox(progress)
        let user = Unmanaged.passUnretained(box).toOpaque()
        let status: acre_status = withExtendedLifetime(box) {
            withUTF8(text) { chars, count in
                all.withUnsafeBufferPointer { idp in
                    offsets.withUnsafeBufferPointer { op in
                        var document = acre_document(
                            ids: idp.baseAddress, n_ids: all.count, text: chars, text_bytes: count,
                            offsets: op.baseAddress)
                        return withOptionalCString(store?.path) { dir in
                            acre_session_ingest(core.session, &document, dir, resume ? 1 : 0, replace ? 1 : 0,
                                                progress == nil ? nil : progressTrampoline, user, &n)
                        }
                    }
                }
            }
        }
        try finish(status)
        return Int(n)
    }

    /// Reopens a document ingested earlier (by any process) with this bundle and policy; no re-ingest.
    @discardableResult
    public func openDocument(_ store: URL) throws -> Int {
        var n: Int64 = 0
        try finish(acre_session_open_document(core.session, store.path, &n))
        return Int(n)
    }

    /// After an ingest or reopen (or its failure): the document as the core holds it, and the error.
    private func finish(_ status: acre_status) throws {
        let failure: Error? = status == ACRE_OK ? nil : (engine.takeCallbackError() ?? AcreError.last(status))
        let now = acre_session_epoch(core.session)
        if now != epoch {
            epoch = now
            var ids = acre_array(), text = acre_array(), offsets = acre_array()
            if acre_session_document(core.session, &ids, &text, &offsets) == ACRE_OK {
                documentIds = Session.copy(ids, Int32.self)
                let bytes = Session.copy(text, UInt8.self)
                self.text = text.data == nil ? nil : Array(String(decoding: bytes, as: UTF8.self).unicodeScalars)
                self.offsets = Session.copy(offsets, Int32.self)
            } else {
                documentIds = []
                self.text = nil
                self.offsets = []
            }
            last = Question()
        }
        if let failure { throw failure }
    }

    // MARK: - questions

    /// Answers `question` from the ingested document, calling `piece` with each piece of text as it is
    /// decoded (false stops the answer). Every question starts again from the document as ingested.
    public func ask(_ question: String, decoding: Decoding = Decoding(), piece: (String) -> Bool) throws {
        guard !question.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw AcreError.input("the question is empty")
        }
        guard !documentIds.isEmpty else {
            throw AcreError.input("no document ingested; call ingest() or openDocument() first")
        }
        let ids = try tokenizer.encode(Session.questionSeparator + question + template.suffix)
        var d = acre_decoding(
            max_new_tokens: Int32(decoding.maxNewTokens), temperature: decoding.temperature, top_p: decoding.topP,
            has_seed: decoding.seed == nil ? 0 : 1, seed: decoding.seed ?? 0, stop_at_eos: decoding.stopAtEos ? 1 : 0)
        try call(acre_session_ask(core.session, ids, ids.count, nil, 0, nil, 0, &d))
        last = try readLast()
        var produced: [Int32] = []
        var shown = 0  // Unicode scalars already given out
        while true {
            var token: Int32 = -1
            try call(acre_session_next(core.session, &token))
            if token < 0 { break }
            produced.append(token)
            let scalars = try tokenizer.decode(produced, skipSpecial: true).unicodeScalars
            if scalars.last == "\u{FFFD}" { continue }  // wait for the rest of a multi-byte character
            let new = String(String.UnicodeScalarView(scalars.dropFirst(shown)))
            shown = scalars.count
            if !new.isEmpty && !piece(new) { break }
        }
    }

    /// The whole answer as one string.
    public func answer(_ question: String, decoding: Decoding = Decoding()) throws -> String {
        var text = ""
        try ask(question, decoding: decoding) { text += $0; return true }
        return text
    }

    private func call(_ status: acre_status) throws {
        if status != ACRE_OK { throw engine.takeCallbackError() ?? AcreError.last(status) }
    }

    private func readLast() throws -> Question {
        var q = acre_question()
        try check(acre_session_last(core.session, &q))
        let spans = Array(UnsafeBufferPointer(start: q.spans, count: q.n_spans)).map { Int($0) }
        return Question(
            spans: spans, cores: Array(UnsafeBufferPointer(start: q.cores, count: q.n_cores)).map { Int($0) },
            spanScores: Array(UnsafeBufferPointer(start: q.span_scores, count: q.n_scores)),
            promptIds: Array(UnsafeBufferPointer(start: q.prompt_ids, count: q.n_prompt)),
            bytesRead: q.bytes_read, readSeconds: q.read_s, sources: try sources(of: spans))
    }

    // MARK: - sources

    /// The passages of the document's text that these L2 spans hold, in document order (none when the
    /// document came without text, or the policy keeps no store).
    public func sources(of spans: [Int]) throws -> [Source] {
        guard let text, !spans.isEmpty else { return [] }
        var store: OpaquePointer?
        try check(acre_session_store(core.session, &store))
        guard let store else { return [] }
        defer { acre_store_free(store) }
        var ranges: [(Int, Int)] = []
        for span in spans {
            var start: Int64 = 0
            var n: Int32 = 0
            try check(acre_store_span(store, span, &start, &n))
            ranges.append((Int(start), Int(start) + Int(n)))
        }
        return Session.passages(ranges, text: text, offsets: offsets)
    }

    /// acre/runtime/sources.py's SourceMap.passages: ranges that touch or overlap become one passage;
    /// tokens without text (the template) and whitespace at a passage's ends are left out.
    static func passages(_ ranges: [(Int, Int)], text: [Unicode.Scalar], offsets: [Int32]) -> [Source] {
        var merged: [(Int, Int)] = []
        for (start, end) in ranges.sorted(by: { $0 < $1 }) {
            if let top = merged.last, start <= top.1 {
                merged[merged.count - 1].1 = max(top.1, end)
            } else {
                merged.append((start, end))
            }
        }
        var sources: [Source] = []
        let tokens = offsets.count / 2
        for (start, end) in merged {
            var first = Int.max
            var lastEnd = Int.min
            let lo = max(start, 0), hi = min(end, tokens)
            if lo < hi {
                for t in lo..<hi where offsets[2 * t] != -1 {
                    first = min(first, Int(offsets[2 * t]))
                    lastEnd = max(lastEnd, Int(offsets[2 * t + 1]))
                }
            }
            if first == Int.max { continue }
            if let previous = sources.last, first <= previous.end {  // a character shared by two tokens
                first = sources.removeLast().start
            }
            lastEnd = min(lastEnd, text.count)
            // Unicode's White_Space; Python's str.strip also takes U+001C..U+001F
            while first < lastEnd && text[first].properties.isWhitespace { first += 1 }
            while lastEnd > first && text[lastEnd - 1].properties.isWhitespace { lastEnd -= 1 }
            if first < lastEnd {
                var view = String.UnicodeScalarView()
                view.append(contentsOf: text[first..<lastEnd])
                sources.append(Source(start: first, end: lastEnd, text: String(view)))
            }
        }
        return sources
    }

    /// The core's byte offsets as Unicode scalar offsets (the Python binding's rule: a byte belongs to
    /// the scalar it is part of; a range's end inside a scalar covers that scalar).
    static func scalarOffsets(_ utf8: [UInt8], _ bytes: [UInt32]) -> [Int32] {
        var scalarAt = [Int32](repeating: 0, count: utf8.count + 1)
        var scalars: Int32 = -1
        for (b, byte) in utf8.enumerated() {
            if byte & 0xC0 != 0x80 { scalars += 1 }
            scalarAt[b] = scalars
        }
        scalarAt[utf8.count] = scalars + 1
        return bytes.enumerated().map { i, b in
            let inside = i % 2 == 1 && Int(b) < utf8.count && utf8[Int(b)] & 0xC0 == 0x80
            return scalarAt[Int(b)] + (inside ? 1 : 0)
        }
    }

    private static func copy<T>(_ array: acre_array, _ type: T.Type) -> [T] {
        guard let data = array.data else { return [] }
        let count = array.info.bytes / MemoryLayout<T>.stride
        return Array(UnsafeBufferPointer(start: data.assumingMemoryBound(to: T.self), count: count))
    }

    // MARK: - profile

    /// What the session holds in RAM and on flash.
    public var profile: Profile {
        var disk = 0
        var spans = 0
        var store: OpaquePointer?
        if acre_session_store(core.session, &store) == ACRE_OK, let store {
            disk = Int(acre_store_disk_bytes(store))
            spans = acre_store_span_count(store)
            acre_store_free(store)
        }
        return Profile(
            potBytes: acre_pot_bytes(core.pot), potSlots: acre_pot_capacity(core.pot),
            indexBytes: acre_session_index_bytes(core.session), l2DiskBytes: disk, spans: spans,
            lastQuestionBytesRead: Int(last.bytesRead), documentTokens: documentIds.count,
            enginePlannedBytes: engine.plannedBytes)
    }

    /// Lets go of the document's store (and the writer's lock).
    public func closeStore() { acre_session_close_store(core.session) }
}

/// The core's handles of a session, freed in order (session, policy, pot) once nothing uses them; it
/// keeps what the session borrows (bundle, tokenizer, engine) alive until then. A Session whose init
/// fails part way frees what was made here.
private final class Core {
    let bundle: AcreBundle
    let engine: Engine
    let tokenizer: Tokenizer
    var pot: OpaquePointer?
    var policy: OpaquePointer?
    var session: OpaquePointer?

    init(bundle: AcreBundle, engine: Engine, tokenizer: Tokenizer) {
        self.bundle = bundle
        self.engine = engine
        self.tokenizer = tokenizer
    }

    deinit {
        acre_session_free(session)
        acre_policy_free(policy)
        acre_pot_free(pot)
    }
}

/// The special tokens of tokenizer_config.json, as acre/runtime/tokenizer.py reads them.
private struct SpecialTokens {
    var ids: Set<Int32> = []
    var bos: Int32?

    init(tokenizer: Tokenizer, directory: URL) {
        let url = directory.appendingPathComponent("tokenizer_config.json")
        guard let data = try? Data(contentsOf: url),
            let config = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return }
        func text(_ value: Any?) -> String? {
            (value as? String) ?? ((value as? [String: Any])?["content"] as? String)
        }
        let named = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"]
        let additional = config["additional_special_tokens"] as? [Any] ?? []
        let extra = additional.isEmpty ? config["extra_special_tokens"] as? [Any] ?? [] : additional
        let names = named.compactMap { text(config[$0]) } + extra.compactMap { text($0) }
        ids = Set(names.compactMap { tokenizer.id(of: $0) })
        bos = text(config["bos_token"]).flatMap { tokenizer.id(of: $0) }
    }
}

private final class ProgressBox {
    let progress: ((Int, Int) -> Bool)?
    init(_ progress: ((Int, Int) -> Bool)?) { self.progress = progress }
}

private let progressTrampoline: acre_progress_fn = { user, done, total in
    guard let user else { return 0 }
    let box = Unmanaged<ProgressBox>.fromOpaque(user).takeUnretainedValue()
    return (box.progress?(Int(done), Int(total)) ?? true) ? 0 : 1
}
