import Foundation

/// What the last question cost and chose.
public struct QuestionStats {
    public var spans: [Int] = []
    public var spanScores: [Double]? = nil
    public var bytesRead = 0
}

/// The memory profile the app shows: RAM that is bounded, flash that grows with the document.
public struct MemoryProfile {
    public var potSlots: Int
    public var potBytes: Int  // allocated once, whatever the document's length
    public var indexBytes: Int  // representative keys of every span, in RAM
    public var l2DiskBytes: Int  // spans.bin on flash
    public var documentTokens: Int
    public var spans: Int
    public var lastQuestionBytesRead: Int  // L2 bytes read for the last question
}

/// A session: one document ingested, then questions answered from it in bounded RAM
/// (acre/runtime/session.py, without its resumable ingest checkpoints).
///
/// The prompt is the tokenizer's chat template with the document and the question in one user turn:
/// the document part is ingested once; each question (+ template suffix) is prefilled after it and the
/// answer decoded. Every question starts again from the ingested document.
public final class Session {
    public static let catalyst = "\nList the names, numbers, facts and key sentences of the text above."
    public static let questionSeparator = "\n\n"

    public let bundle: AcreBundle
    public let policy: Policy
    public let engine: StepEngine
    public let tokenizer: TextTokenizer
    public let geometry: Geometry
    public let chunk: Int
    public let spanTokens: Int
    public let repsPerSpan: Int
    public let codec: L2Codec
    public let pot: Pot
    public let layout: Layout
    public let probeLayers: [Int]
    /// Retrieval heads as (index into probeLayers, query head), the way q_probe is laid out.
    public let retrievalHeads: [(Int, Int)]
    let regions: [SlotKind: [Int]]
    let catalystIds: [Int]
    let stopIds: Set<Int>
    /// The chat template's ids (and BOS, EOS): they match the document's template, not its text, so BM25
    /// leaves them out of the question.
    let templateIds: Set<Int>

    public private(set) var store: SpanStore?
    public private(set) var index: SpanIndex?
    /// Built from the document's ids on first use.
    public private(set) var lexical: LexicalIndex?
    public private(set) var documentIds: [Int] = []
    public private(set) var last = QuestionStats()
    /// True when the last ingest found the document already in its store and reopened it.
    public private(set) var reopened = false

    public init(
        bundle: AcreBundle, engine: StepEngine, tokenizer: TextTokenizer, policy: Policy? = nil,
        spanTokens: Int = 64, reps: Int = 8, codec: L2Codec = .float16
    ) throws {
        self.bundle = bundle
        self.policy = try policy ?? Policy.named("acre")
        self.engine = engine
        self.tokenizer = tokenizer
        geometry = bundle.geometry
        chunk = bundle.chunk
        self.spanTokens = spanTokens
        repsPerSpan = reps
        self.codec = codec
        pot = Pot(geometry: bundle.geometry, capacity: bundle.pot)
        layout = try Layout.plan(self.policy, capacity: bundle.pot, chunk: bundle.chunk, span: spanTokens)
        probeLayers = bundle.probeLayers
        var heads: [(Int, Int)] = []
        for (layer, head) in bundle.signalHeads {
            guard let at = bundle.probeLayers.firstIndex(of: layer) else {
                throw BundleError(.field, "\(bundle.root.path): signal head layer \(layer) is not a probe layer")
            }
            heads.append((at, head))
        }
        retrievalHeads = heads
        var regions: [SlotKind: [Int]] = [:]
        if !self.policy.bounded {  // full: one shared pool, the question takes what the document left
            regions[.recent] = Array(0..<bundle.pot)
            regions[.question] = Array(0..<bundle.pot)
        } else {
            var start = 0
            for (kind, size) in [
                (SlotKind.sink, layout.sink), (.l1, layout.l1), (.recent, layout.recent), (.refill, layout.refill),
                (.question, layout.question),
            ] {
                regions[kind] = Array(start..<(start + size))
                start += size
            }
        }
        self.regions = regions
        let catalyst = self.policy.l1 ? tokenizer.encode(Session.catalyst) : []
        catalystIds = Array(catalyst.suffix(bundle.chunk / 4))
        stopIds = Set(bundle.eosTokenIds)
        var template = Set(tokenizer.encode(tokenizer.promptPrefix + tokenizer.promptSuffix)).union(bundle.eosTokenIds)
        if let bos = tokenizer.bosTokenId ?? bundle.bosTokenId { template.insert(bos) }
        templateIds = template
    }

    var repsShape: RepsShape {
        RepsShape(probeLayers: probeLayers.count, kvHeads: geometry.kvHeads, reps: repsPerSpan, headDim: geometry.headDim)
    }

    func freeIn(_ kind: SlotKind) -> [Int] {
        (regions[kind] ?? []).filter { pot.kind[$0] == .free }
    }

    func slotsOf(_ kinds: SlotKind...) -> [Int] {
        pot.slots(of: Set(kinds))
    }

    public var profile: MemoryProfile {
        MemoryProfile(
            potSlots: pot.capacity, potBytes: pot.nbytes, indexBytes: index?.nbytes ?? 0,
            l2DiskBytes: store?.diskBytes ?? 0, documentTokens: documentIds.count, spans: store?.spanCount ?? 0,
            lastQuestionBytesRead: last.bytesRead)
    }

    // MARK: - tokens

    func encode(_ text: String, _ what: String) throws -> [Int] {
        if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw InputError("the \(what) is empty") }
        return tokenizer.encode(text)
    }

    func checkIds(_ ids: [Int], _ what: String) throws {
        if ids.isEmpty { throw InputError("the \(what) has no tokens") }
        if let bad = ids.first(where: { $0 < 0 || $0 >= geometry.vocab }) {
            throw InputError("the \(what) has token id \(bad) outside the model's vocabulary [0, \(geometry.vocab))")
        }
    }

    public func documentPromptIds(_ text: String) throws -> [Int] {
        var ids = try encode(text, "document")
        let prefix = tokenizer.promptPrefix
        if prefix.isEmpty, let bos = tokenizer.bosTokenId ?? bundle.bosTokenId { ids.insert(bos, at: 0) }
        return (prefix.isEmpty ? [] : tokenizer.encode(prefix)) + ids
    }

    public func questionPromptIds(_ question: String) throws -> [Int] {
        _ = try encode(question, "question")  // refuses an empty question
        return tokenizer.encode(Session.questionSeparator + question + tokenizer.promptSuffix)
    }

    public static func documentDigest(_ ids: [Int]) -> String {
        var bytes = [UInt8](repeating: 0, count: 4 * ids.count)
        for (i, id) in ids.enumerated() { ByteIO.put32(&bytes, 4 * i, UInt32(truncatingIfNeeded: id)) }
        return Digests.sha256Hex(Data(bytes))
    }

    // MARK: - ingest

    /// Ingest a document (replacing any earlier one); returns its length in tokens. With a refilling
    /// policy its L2 goes to `store`; a store that already holds this very document is reopened.
    @discardableResult
    public func ingest(_ text: String, store: URL?, progress: ((Int, Int) -> Void)? = nil) throws -> Int {
        try ingestIds(documentPromptIds(text), store: store, progress: progress)
    }

    @discardableResult
    public func ingestIds(_ ids: [Int], store storeURL: URL?, progress: ((Int, Int) -> Void)? = nil) throws -> Int {
        try checkIds(ids, "document")
        if !policy.bounded && ids.count > pot.capacity - 1 {
            throw InputError(
                "the document has \(ids.count) tokens; the 'full' policy keeps all of them in the pot, "
                    + "which holds \(pot.capacity) slots. Use a bounded policy (acre).")
        }
        let digest = Session.documentDigest(ids)
        reopened = false
        if policy.refill, let storeURL, reopenFinished(storeURL, digest: digest) {
            reopened = true
            progress?(ids.count, ids.count)
            return ids.count
        }
        pot.clear(Array(0..<pot.capacity))
        documentIds = []
        index = nil
        lexical = nil
        store?.close()
        store = nil
        var buffer: SpanBuffer? = nil
        if policy.refill {
            let url = storeURL ?? FileManager.default.temporaryDirectory.appendingPathComponent("acre-l2-\(UUID().uuidString)")
            let created = try SpanStore.create(at: url, meta: storeMeta)
            store = created
            buffer = SpanBuffer(store: created, probeLayers: probeLayers)
        }
        let perStep = chunk - catalystIds.count
        var start = 0
        while start < ids.count {
            let piece = Array(ids[start..<Swift.min(start + perStep, ids.count)])
            let out = try step(piece + catalystIds, start: compact())
            let n = piece.count
            try buffer?.add(ids: piece, k: out.kNew, v: out.vNew, width: out.rows, count: n)
            place(start: start, count: n, out: out, catalystRows: n..<(n + catalystIds.count))
            progress?(start + n, ids.count)
            start += perStep
        }
        documentIds = ids
        if let buffer, let store {
            try buffer.flush()
            try store.finish(
                snapshot: PotSnapshot.encode(pot, documentIds: ids),
                extra: [("policy", .string(policy.name)), ("document_sha256", .string(digest))])
            index = SpanIndex(reps: store.reps, shape: repsShape)
        }
        return ids.count
    }

    var storeMeta: StoreMeta {
        StoreMeta(
            fingerprint: bundle.fingerprint, spanTokens: spanTokens, layers: geometry.layers,
            kvHeads: geometry.kvHeads, headDim: geometry.headDim, probeLayers: probeLayers.count, reps: repsPerSpan,
            codec: codec)
    }

    /// If `url` already holds this very document, finished, with this bundle and policy: reopen it.
    private func reopenFinished(_ url: URL, digest: String) -> Bool {
        guard let info = try? SpanStore.open(at: url, fingerprint: bundle.fingerprint).info,
            info["complete"] == .bool(true), info["document_sha256"] == .string(digest),
            info["policy"] == .string(policy.name)
        else { return false }
        return ((try? openDocument(url)) ?? 0) > 0
    }

    /// Reopen a document ingested earlier (another launch) with this bundle; no re-ingest.
    @discardableResult
    public func openDocument(_ url: URL) throws -> Int {
        guard policy.refill else {
            throw InputError("policy '\(policy.name)' keeps no L2 store; open documents with policy acre")
        }
        let opened = try SpanStore.open(at: url, fingerprint: bundle.fingerprint)
        let snapshot = try opened.loadSnapshot()
        guard opened.info["policy"] == .string(policy.name) else {
            throw InputError("\(url.path): ingested with another policy; ingest it again")
        }
        let ids = try PotSnapshot.restore(snapshot, into: pot)
        store?.close()
        store = opened
        index = SpanIndex(reps: opened.reps, shape: repsShape)
        lexical = nil
        documentIds = ids
        return ids.count
    }

    /// Put the chunk's K/V into the pot: sinks first, then the recent window; what leaves the recent
    /// window is distilled into L1 (or dropped, for streaming).
    private func place(start: Int, count n: Int, out: StepOutput, catalystRows: Range<Int>) {
        let sinkRows = (0..<n).filter { start + $0 < layout.sink }
        if !sinkRows.isEmpty {
            let slots = Array(freeIn(.sink).prefix(sinkRows.count))
            pot.write(
                slots: slots, k: out.kNew, v: out.vNew, rows: Array(sinkRows.prefix(slots.count)), width: out.rows,
                kind: .sink, tokens: sinkRows.map { start + $0 })
        }
        let restRows = (0..<n).filter { start + $0 >= layout.sink }
        var free = freeIn(.recent)
        if restRows.count > free.count {
            let recent = slotsOf(.recent).sorted { (pot.token[$0], $0) < (pot.token[$1], $1) }
            let leaving = Array(recent.prefix(restRows.count - free.count))
            if policy.l1 {
                let p = pot.capacity
                var importance = [Float](repeating: 0, count: p)
                for row in catalystRows {
                    for slot in 0..<p { importance[slot] += out.potAttention[row * p + slot] }
                }
                distil(candidates: leaving, attention: importance)
            }
            pot.clear(leaving)
            free = freeIn(.recent)
        }
        let slots = Array(free.prefix(restRows.count))
        pot.write(
            slots: slots, k: out.kNew, v: out.vNew, rows: Array(restRows.prefix(slots.count)), width: out.rows,
            kind: .recent, tokens: restRows.prefix(slots.count).map { start + $0 })
    }

    /// CCD: of the current L1 and the candidates, keep the most important in L1. Importance mixes the
    /// catalyst's attention with novelty (1 - the largest cosine to the others' probe-layer keys).
    private func distil(candidates: [Int], attention: [Float]) {
        let pool = slotsOf(.l1) + candidates
        if pool.isEmpty { return }
        let top = Swift.max(pool.map { attention[$0] }.max() ?? 0, 1e-12)
        let attended = pool.map { attention[$0] / top }
        let (hkv, d) = (geometry.kvHeads, geometry.headDim)
        let dim = probeLayers.count * hkv * d
        var vectors = [Float](repeating: 0, count: pool.count * dim)
        for (i, slot) in pool.enumerated() {
            var at = i * dim
            for layer in probeLayers {
                for head in 0..<hkv {
                    let from = pot.offset(layer, head, slot)
                    for j in 0..<d {
                        vectors[at] = pot.k[from + j]
                        at += 1
                    }
                }
            }
            var squares: Float = 0
            for j in (i * dim)..<((i + 1) * dim) { squares += vectors[j] * vectors[j] }
            let norm = squares.squareRoot() + 1e-12
            for j in (i * dim)..<((i + 1) * dim) { vectors[j] /= norm }
        }
        var novelty = [Float](repeating: 1, count: pool.count)
        if pool.count > 1 {
            for i in 0..<pool.count {
                var closest: Float = -1  // the diagonal is set to -1
                for other in 0..<pool.count where other != i {
                    var dot: Float = 0
                    for j in 0..<dim { dot += vectors[i * dim + j] * vectors[other * dim + j] }
                    closest = Swift.max(closest, dot)
                }
                novelty[i] = Swift.min(Swift.max(1 - closest, 0), 1)
            }
        }
        let w = Float(policy.noveltyWeight)
        let importance = (0..<pool.count).map { (1 - w) * attended[$0] + w * novelty[$0] }
        let order = importance.indices.sorted {
            importance[$0] > importance[$1] || (importance[$0] == importance[$1] && $0 < $1)
        }
        let keep = Set(order.prefix(layout.l1).map { pool[$0] })
        pot.clear(slotsOf(.l1).filter { !keep.contains($0) })
        let moving = candidates.filter { keep.contains($0) }
        let slots = Array(freeIn(.l1).prefix(moving.count))
        pot.copy(from: Array(moving.prefix(slots.count)), to: slots, kind: .l1)
    }

    // MARK: - ask

    /// Stream the answer to `question` as text pieces; `onPiece` returns false to stop.
    public func ask(
        _ question: String, maxNewTokens: Int = 256, temperature: Double = 0, topP: Double = 1, seed: UInt64 = 0,
        onPiece: (String) -> Bool
    ) throws {
        let ids = try questionPromptIds(question)
        var produced: [Int] = []
        var shown = ""
        try generate(ids, maxNewTokens: maxNewTokens, temperature: temperature, topP: topP, seed: seed) { token in
            produced.append(token)
            let text = tokenizer.decode(produced)
            guard !text.hasSuffix("\u{FFFD}") else { return true }  // wait for the rest of a character
            let piece = text.hasPrefix(shown) ? String(text.unicodeScalars.dropFirst(shown.unicodeScalars.count)) : text
            shown = text
            return piece.isEmpty ? true : onPiece(piece)
        }
    }

    /// Stream answer token ids (stop tokens excluded) for tokenized question ids; `onToken` returns
    /// false to stop.
    public func generate(
        _ questionIds: [Int], maxNewTokens: Int = 256, temperature: Double = 0, topP: Double = 1, seed: UInt64 = 0,
        onToken: (Int) -> Bool
    ) throws {
        if documentIds.isEmpty { throw InputError("no document ingested; ingest one or open one first") }
        try checkIds(questionIds, "question")
        resetQuestion()
        let room = freeIn(.question).count
        if questionIds.count >= room {
            throw InputError("the question has \(questionIds.count) tokens; only \(room) pot slots are left for it")
        }
        last = QuestionStats()
        let first = try prefill(questionIds)
        var logits = first.logits
        if policy.refill, let store, store.spanCount > 0 {
            let readBefore = store.bytesRead
            let spans = try selectSpans(attention: first.attention, queries: first.queries, questionIds: questionIds)
            pot.clear(slotsOf(.question))  // refilled spans must not see the question
            try refill(spans)
            last.bytesRead = store.bytesRead - readBefore
            compact()
            logits = try prefill(questionIds).logits
        }
        var sampler = Sampler(seed: seed)
        for _ in 0..<maxNewTokens {
            let token = sampler.sample(logits, temperature: temperature, topP: topP)
            if stopIds.contains(token) { return }
            if !onToken(token) { return }
            if freeIn(.question).isEmpty { return }  // the question region is full: the answer is cut here
            logits = try prefill([token]).logits
        }
    }

    /// Back to the pot as ingest left it: no question, no refill, every stored entry visible.
    private func resetQuestion() {
        pot.clear(slotsOf(.question, .refill))
        for slot in slotsOf(.sink, .l1, .recent) { pot.mask[slot] = true }
        compact()
    }

    /// Score spans by (a) the question's attention on their L1 entries, (b) probe queries against the span
    /// index and (c) BM25 of the question's token ids; keep the best by a dynamic cut-off, in document order.
    func selectSpans(attention: [Double], queries: ProbeQueries, questionIds: [Int]) throws -> [Int] {
        guard let store else { return [] }
        let (spans, s) = (store.spanCount, spanTokens)
        var attentionMass: [Double]? = nil
        var indexZ: [Double]? = nil
        if policy.useAttention {
            var mass = [Double](repeating: 0, count: spans)
            for slot in slotsOf(.l1) where pot.token[slot] >= 0 && pot.token[slot] / s < spans {
                mass[pot.token[slot] / s] += attention[slot]
            }
            attentionMass = mass
        }
        if policy.useIndex {
            let index = self.index ?? SpanIndex(reps: store.reps, shape: repsShape)
            self.index = index
            let probes =
                policy.useProbes
                ? Session.selectProbeQueries(queries) : queries.selecting(tokens: [queries.tokens - 1])
            // mean, not sum, of the heads' standardised scores (a softmax over sums is one-hot): the index
            // sums them head by head, the session then divides the sums, as session.py does
            let heads = Double(retrievalHeads.count)
            indexZ = index.scores(probes, heads: retrievalHeads, tree: policy.useTree).map { $0 / heads }
        }
        var lexicalScores: [Double]? = nil
        if policy.useLexical {
            let lexical = self.lexical ?? LexicalIndex(documentIds: documentIds, spanTokens: s)
            self.lexical = lexical
            lexicalScores = lexical.scores(questionIds.filter { !templateIds.contains($0) })
        }
        var scores = try Selection.combineScores(attention: attentionMass, indexZ: indexZ, lexical: lexicalScores)
        let resident = Set(slotsOf(.sink, .recent).map { pot.token[$0] })
        for span in Set(resident.map { $0 / s }).sorted() where span >= 0 && span < spans {
            let first = span * s
            if (first..<(first + store.lengths[span])).allSatisfy({ resident.contains($0) }) {
                scores[span] = 0  // wholly in the pot already
            }
        }
        last.spanScores = scores
        last.spans = Selection.chooseSpans(
            scores, budget: layout.refill / s, mass: policy.mass, minSpans: policy.minSpans,
            neighbors: policy.neighbors)
        return last.spans
    }

    /// ActQKV: the question tokens whose queries deviate most from the question's mean query probe the
    /// index, plus the last token.
    static func selectProbeQueries(_ queries: ProbeQueries, share: Double = 0.25) -> ProbeQueries {
        let (t, d) = (queries.tokens, queries.headDim)
        var bias = [Float](repeating: 0, count: t)
        for layer in 0..<queries.layers {
            for head in 0..<queries.heads {
                var mean = [Float](repeating: 0, count: d)
                for token in 0..<t {
                    let at = queries.offset(layer, head, token)
                    for j in 0..<d { mean[j] += queries.values[at + j] }
                }
                for j in 0..<d { mean[j] /= Float(t) }
                for token in 0..<t {
                    let at = queries.offset(layer, head, token)
                    var squares: Float = 0
                    for j in 0..<d {
                        let x = queries.values[at + j] - mean[j]
                        squares += x * x
                    }
                    bias[token] += squares.squareRoot()
                }
            }
        }
        let k = Swift.max(1, Int((Double(t) * share).rounded(.up)))
        let order = bias.indices.sorted { bias[$0] > bias[$1] || (bias[$0] == bias[$1] && $0 < $1) }
        let picks = Set(order.prefix(k)).union([t - 1]).sorted()
        return queries.selecting(tokens: picks)
    }

    /// Bring the chosen spans from L2 into the refill slots, in document order. Tokens already in the pot
    /// as sinks or recent entries are not duplicated; L1 is hidden while the answer is made.
    private func refill(_ spans: [Int]) throws {
        guard let store else { return }
        let resident = Set(slotsOf(.sink, .recent).map { pot.token[$0] })
        let reuse = policy.refillMode == .reuse
        if !reuse {
            for span in spans { _ = try store.readTokens(span) }  // checks the ids against their crc
        }
        let placed = try Selection.refillPlacement(
            spans: spans, starts: store.starts, lengths: store.lengths, resident: resident, freeSlots: freeIn(.refill))
        let (n, d, groups) = (placed.slots.count, geometry.headDim, geometry.layers * geometry.kvHeads)
        var k = [Float](repeating: 0, count: groups * n * d)
        var v = k
        if reuse {  // copy the stored activations of the tokens being refilled
            for span in spans {
                let read = try store.read(span)
                let length = read.tokens.count
                for (row, token) in placed.tokens.enumerated() where token >= read.start && token < read.start + length {
                    for group in 0..<groups {
                        let from = (group * length + token - read.start) * d
                        let to = (group * n + row) * d
                        for j in 0..<d {
                            k[to + j] = read.k[from + j]
                            v[to + j] = read.v[from + j]
                        }
                    }
                }
            }
        }
        pot.write(slots: placed.slots, k: k, v: v, rows: Array(0..<n), width: n, kind: .refill, tokens: placed.tokens)
        for slot in slotsOf(.l1) { pot.mask[slot] = false }
        if !reuse { try reencode() }
    }

    /// Compute the K/V of the refilled tokens in the context they are now shown in: the sinks and the
    /// refilled tokens before them, in document order (the recent window and L1 hidden). As in the
    /// Python runtime, refilled tokens of earlier chunks keep position 0 until the final compaction.
    private func reencode() throws {
        let slots = slotsOf(.refill).sorted { (pot.token[$0], $0) < (pot.token[$1], $1) }
        let later = slotsOf(.recent, .refill)
        for slot in later { pot.mask[slot] = false }
        var position = compact()  // the sinks
        var done = 0
        while done < slots.count {
            let part = Array(slots[done..<Swift.min(done + chunk, slots.count)])
            let out = try step(part.map { documentIds[pot.token[$0]] }, start: position)
            pot.writeKV(slots: part, k: out.kNew, v: out.vNew, rows: Array(0..<part.count), width: out.rows)
            for (i, slot) in part.enumerated() {
                pot.positions[slot] = position + i  // later parts see these entries at their place
                pot.mask[slot] = true
            }
            position += part.count
            done += part.count
        }
        for slot in later { pot.mask[slot] = true }
        compact()
    }

    // MARK: - the step loop

    /// Give the visible document entries consecutive positions in document order (so the model never
    /// sees a position outside its window) and return the next free position.
    @discardableResult
    func compact() -> Int {
        let slots = slotsOf(.sink, .l1, .recent, .refill).filter { pot.mask[$0] }
            .sorted { (pot.token[$0], $0) < (pot.token[$1], $1) }
        for (i, slot) in slots.enumerated() { pot.positions[slot] = i }
        return slots.count
    }

    /// One call of the step program (the decode entry point for a single token).
    func step(_ ids: [Int], start: Int) throws -> StepOutput {
        let width = engine.rows(for: ids.count)
        if start + ids.count > geometry.window {
            throw InputError("\(start + ids.count) positions exceed the model's window of \(geometry.window)")
        }
        var tokens = [Int32](repeating: 0, count: width)
        for (i, id) in ids.enumerated() { tokens[i] = Int32(id) }
        let positions = (0..<width).map { Int32(start + $0) }
        return try engine.step(tokens: tokens, positions: positions, pot: pot, lastIndex: ids.count - 1)
    }

    /// Run question (or answer) tokens through the step program in chunks, writing their K/V into the
    /// question region. Returns the logits after the last token, the attention the tokens put on each
    /// pot slot, and their probe-layer queries [Lp, H, n, D].
    func prefill(_ ids: [Int]) throws -> (logits: [Float], attention: [Double], queries: ProbeQueries) {
        let p = pot.capacity
        let (lp, h, d) = (probeLayers.count, geometry.heads, geometry.headDim)
        var attention = [Double](repeating: 0, count: p)
        var queries = [Float](repeating: 0, count: lp * h * ids.count * d)
        var logits: [Float] = []
        var done = 0
        while done < ids.count {
            let piece = Array(ids[done..<Swift.min(done + chunk, ids.count)])
            var start = 0
            for slot in 0..<p where pot.mask[slot] { start = Swift.max(start, pot.positions[slot] + 1) }
            let out = try step(piece, start: start)
            let n = piece.count
            for slot in 0..<p {
                var sum: Float = 0
                for row in 0..<n { sum += out.potAttention[row * p + slot] }
                attention[slot] += Double(sum)
            }
            for layer in 0..<lp {
                for head in 0..<h {
                    for row in 0..<n {
                        let from = ((layer * h + head) * out.rows + row) * d
                        let to = ((layer * h + head) * ids.count + done + row) * d
                        for j in 0..<d { queries[to + j] = out.qProbe[from + j] }
                    }
                }
            }
            let slots = Array(freeIn(.question).prefix(n))
            pot.write(
                slots: slots, k: out.kNew, v: out.vNew, rows: Array(0..<slots.count), width: out.rows,
                positions: (0..<slots.count).map { start + $0 }, kind: .question)
            logits = out.logits
            done += n
        }
        let probe = ProbeQueries(values: queries, layers: lp, heads: h, tokens: ids.count, headDim: d)
        return (logits, attention, probe)
    }
}
