import Foundation

/// One span read back from L2: K/V [L, Hkv, n, D] float32, flattened row-major.
public struct StoredSpan {
    public let index: Int
    public let start: Int  // document index of its first token
    public let tokens: [Int32]
    public let k: [Float]
    public let v: [Float]
}

/// L2: one document's key/value activations on flash (acre/runtime/l2.py SpanStore), same format.
///
///     store.json  format, version, meta (StoreMeta), complete, and what finish() adds
///     spans.bin   fixed-size records, one per span (StoreMeta, SpanHeader)
///     pot.bin     this port's snapshot of the pot after ingest (the Python runtime writes pot.npz)
///
/// Only the records asked for are read, by position, each checked against its crc32 before it is
/// served. Opening drops a torn tail: a last record whose checksum fails, any partial record after
/// it, and everything from the first record whose header is wrong.
public final class SpanStore {
    public static let format = "acre-l2"
    public static let formatVersion = 1
    public static let snapshotName = "pot.bin"

    public let directory: URL
    public let meta: StoreMeta
    public private(set) var info: JSONObject
    public private(set) var starts: [Int] = []
    public private(set) var lengths: [Int] = []
    /// Representative keys of every span, float16 bits [Lp, Hkv, R, D] each: the span index, in RAM.
    public private(set) var reps: [[UInt16]] = []
    /// Bytes read from spans.bin so far (the profile's "read per question" is a difference of this).
    public private(set) var bytesRead = 0
    public let writable: Bool

    private var handle: FileHandle?
    private var lock: FileLock?

    var spansURL: URL { directory.appendingPathComponent("spans.bin") }
    var headerURL: URL { directory.appendingPathComponent("store.json") }

    private init(directory: URL, meta: StoreMeta, info: JSONObject, writable: Bool, lock: FileLock?) throws {
        self.directory = directory
        self.meta = meta
        self.info = info
        self.writable = writable
        self.lock = lock
        let spans = directory.appendingPathComponent("spans.bin")
        if writable {
            handle = try FileHandle(forUpdating: spans)
        } else {
            handle = try FileHandle(forReadingFrom: spans)
        }
    }

    deinit { close() }

    // MARK: - create / open

    /// A new, empty store (an existing one at `directory` is replaced).
    public static func create(at directory: URL, meta: StoreMeta) throws -> SpanStore {
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true)
        let lock = try FileLock.acquire(directory.appendingPathComponent("lock"), owner: directory)
        do {
            for name in ["spans.bin", "pot.npz", snapshotName] {
                try? fm.removeItem(at: directory.appendingPathComponent(name))
            }
            guard fm.createFile(atPath: directory.appendingPathComponent("spans.bin").path, contents: Data()) else {
                throw StoreError("\(directory.path): cannot create spans.bin")
            }
            let info = JSONObject([
                ("format", .string(format)), ("version", .int(formatVersion)), ("meta", meta.json),
                ("complete", .bool(false)),
            ])
            try writeJSON(info, to: directory.appendingPathComponent("store.json"))
            return try SpanStore(directory: directory, meta: meta, info: info, writable: true, lock: lock)
        } catch {
            lock.release()
            throw error
        }
    }

    /// Reopen a store. With `fingerprint`, refuse one written by another model or bundle.
    public static func open(at directory: URL, fingerprint: String? = nil, writable: Bool = false) throws -> SpanStore {
        let headerURL = directory.appendingPathComponent("store.json")
        guard isFile(headerURL), isFile(directory.appendingPathComponent("spans.bin")) else {
            throw StoreError("\(directory.path): not an L2 store (store.json or spans.bin missing)")
        }
        let info: JSONObject
        do {
            guard let object = try JSON.read(headerURL).object else { throw JSONError(description: "not an object") }
            info = object
        } catch {
            throw StoreError("\(headerURL.path): unreadable store header (\(error))")
        }
        guard info["format"] == .string(format) else { throw StoreError("\(headerURL.path): not an acre L2 store") }
        guard info["version"]?.number == Double(formatVersion) else {
            let shown = info["version"]?.pythonString ?? "None"
            throw StoreError("\(headerURL.path): L2 format version \(shown), expected \(formatVersion)")
        }
        let meta = try StoreMeta(json: info["meta"], place: headerURL.path)
        if let fingerprint, meta.fingerprint != fingerprint {
            throw StoreError("\(directory.path): this document was ingested with another model or bundle; ingest it again")
        }
        var lock: FileLock? = nil
        if writable { lock = try FileLock.acquire(directory.appendingPathComponent("lock"), owner: directory) }
        let store = try SpanStore(directory: directory, meta: meta, info: info, writable: writable, lock: lock)
        try store.scan()
        return store
    }

    /// Index the complete records; drop a trailing partial or corrupt record (l2.py _scan, step for step).
    private func scan() throws {
        let size = try fileBytes()
        let rb = meta.recordBytes
        var count = size / rb
        if count > 0 {
            let lastIsGood = try verify(count - 1)
            if !lastIsGood { count -= 1 }  // a torn last write: its checksum fails
        }
        var good = 0
        while good < count {
            let head = try pread(SpanHeader.size, at: good * rb)
            guard head.count == SpanHeader.size else { break }
            let header = SpanHeader(head)
            // records after a damaged header cannot be trusted to be in order
            guard header.magicOK, header.span == UInt32(good), header.count > 0,
                Int(header.count) <= meta.spanTokens
            else { break }
            starts.append(Int(header.start))
            lengths.append(Int(header.count))
            let raw = try pread(rb - meta.repsOffset, at: good * rb + meta.repsOffset)
            reps.append((0..<meta.repsCount).map { ByteIO.u16(raw, 2 * $0) })
            good += 1
        }
        if writable && size != good * rb {
            try handle?.truncate(atOffset: UInt64(good * rb))  // discard what is past the last good record
        }
    }

    // MARK: - write

    public var spanCount: Int { starts.count }

    /// Document tokens held so far.
    public var tokens: Int { (starts.last ?? 0) + (lengths.last ?? 0) }

    /// Append one span: n <= S tokens, k and v [L, Hkv, n, D], reps [Lp, Hkv, R, D] (stored as float16).
    public func append(start: Int, tokens: [Int32], k: [Float], v: [Float], reps: [Float]) throws {
        guard writable, let handle else { throw StoreError("\(directory.path): opened read-only") }
        let n = tokens.count
        let (s, d) = (meta.spanTokens, meta.headDim)
        guard n > 0 && n <= s else { throw StoreError("span of \(n) tokens; spans hold 1..\(s)") }
        if let last = lengths.last, last != s { throw StoreError("only the last span of a document may be partial") }
        let rowsOut = meta.layers * meta.kvHeads
        guard k.count == rowsOut * n * d, v.count == k.count, reps.count == meta.repsCount else {
            throw StoreError("span K/V or representatives of the wrong shape for this store")
        }
        var record = [UInt8](repeating: 0, count: meta.recordBytes)
        for (i, token) in tokens.enumerated() {
            ByteIO.put32(&record, meta.tokensOffset + 4 * i, UInt32(bitPattern: token))
        }
        for (values, offset, scaleOffset) in [(k, meta.kOffset, meta.kScaleOffset), (v, meta.vOffset, meta.vScaleOffset)] {
            var padded = [Float](repeating: 0, count: meta.kvCount)  // rows after n stay zero
            for group in 0..<rowsOut {
                for t in 0..<n {
                    for j in 0..<d { padded[(group * s + t) * d + j] = values[(group * n + t) * d + j] }
                }
            }
            KVCodec.encode(padded, meta: meta, into: &record, offset: offset, scaleOffset: scaleOffset)
        }
        let halves = reps.map(Half.fromFloat)
        for (i, half) in halves.enumerated() { ByteIO.put16(&record, meta.repsOffset + 2 * i, half) }
        let span = spanCount
        let tokenCRC = CRC32.checksum(record[meta.tokensOffset..<meta.kOffset])
        SpanHeader.write(into: &record, span: span, count: n, start: start, crc: 0, tokenCRC: tokenCRC)
        ByteIO.put32(&record, SpanHeader.crcOffset, SpanHeader.recordCRC(record))
        do {
            try handle.seekToEnd()
            try handle.write(contentsOf: Data(record))
        } catch {
            try? handle.truncate(atOffset: UInt64(span * meta.recordBytes))  // no partial record stays behind
            throw StoreError(
                "\(spansURL.path): cannot write span \(span) (\(error.localizedDescription)); "
                    + "the \(span) spans before it are intact")
        }
        starts.append(start)
        lengths.append(n)
        self.reps.append(halves)
    }

    /// Mark the document complete, with the pot snapshot that lets it be asked again without re-ingest.
    public func finish(snapshot: Data, extra: [(String, JSON)]) throws {
        guard writable, let handle else { throw StoreError("\(directory.path): opened read-only") }
        do {
            try handle.synchronize()
            try snapshot.write(to: directory.appendingPathComponent(SpanStore.snapshotName), options: .atomic)
            info["complete"] = .bool(true)
            info["document_tokens"] = .int(tokens)
            info["spans"] = .int(spanCount)
            for (key, value) in extra { info[key] = value }
            info["pot_bin_crc32"] = .int(Int(CRC32.checksum(snapshot)))
            try SpanStore.writeJSON(info, to: headerURL)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError("\(directory.path): cannot write (\(error.localizedDescription)); ingest again")
        }
    }

    /// The pot snapshot written by finish(), checked against its crc32.
    public func loadSnapshot() throws -> Data {
        guard info["complete"] == .bool(true) else {
            throw StoreError("\(directory.path): ingest did not finish; ingest the document again")
        }
        let url = directory.appendingPathComponent(SpanStore.snapshotName)
        let data = (try? Data(contentsOf: url)) ?? Data()
        guard info["pot_bin_crc32"] == .int(Int(CRC32.checksum(data))) else {
            throw StoreError("\(url.path): missing or corrupt (checksum mismatch)")
        }
        return data
    }

    // MARK: - read

    public func read(_ span: Int) throws -> StoredSpan {
        try checkExists(span)
        let raw = try record(span)
        let header = SpanHeader(raw)
        guard raw.count == meta.recordBytes, header.magicOK, header.span == UInt32(span),
            SpanHeader.recordCRC(raw) == header.crc
        else { throw StoreError("\(spansURL.path): span \(span) fails its checksum; not served") }
        let n = Swift.min(Int(header.count), meta.spanTokens)
        let tokens = (0..<n).map { ByteIO.i32(raw, meta.tokensOffset + 4 * $0) }
        let k = KVCodec.decode(raw, meta: meta, offset: meta.kOffset, scaleOffset: meta.kScaleOffset, rows: n)
        let v = KVCodec.decode(raw, meta: meta, offset: meta.vOffset, scaleOffset: meta.vScaleOffset, rows: n)
        return StoredSpan(index: span, start: Int(header.start), tokens: tokens, k: k, v: v)
    }

    /// (first token index, token ids) of a span, reading only the header and the ids, checked by
    /// their own crc32.
    public func readTokens(_ span: Int) throws -> (start: Int, tokens: [Int32]) {
        try checkExists(span)
        let size = SpanHeader.size + 4 * meta.spanTokens
        let raw = try pread(size, at: span * meta.recordBytes)
        bytesRead += raw.count
        let header = SpanHeader(raw)
        guard raw.count == size, header.magicOK, header.span == UInt32(span),
            Int(header.count) <= meta.spanTokens,
            CRC32.checksum(raw[SpanHeader.size...]) == header.tokenCRC
        else { throw StoreError("\(spansURL.path): span \(span) fails its checksum; not served") }
        let tokens = (0..<Int(header.count)).map { ByteIO.i32(raw, SpanHeader.size + 4 * $0) }
        return (Int(header.start), tokens)
    }

    /// Bytes of spans.bin on flash.
    public var diskBytes: Int { (try? fileBytes()) ?? 0 }

    public func close() {
        try? handle?.close()
        handle = nil
        lock?.release()
        lock = nil
    }

    // MARK: - helpers

    private func checkExists(_ span: Int) throws {
        guard span >= 0 && span < spanCount else {
            throw StoreError("\(directory.path): span \(span) does not exist (\(spanCount) spans)")
        }
    }

    private func record(_ span: Int) throws -> [UInt8] {
        let raw = try pread(meta.recordBytes, at: span * meta.recordBytes)
        bytesRead += raw.count
        return raw
    }

    private func verify(_ span: Int) throws -> Bool {
        let raw = try record(span)
        guard raw.count == meta.recordBytes else { return false }
        let header = SpanHeader(raw)
        return header.magicOK && SpanHeader.recordCRC(raw) == header.crc
    }

    private func pread(_ count: Int, at offset: Int) throws -> [UInt8] {
        guard let handle else { throw StoreError("\(directory.path): store is closed") }
        try handle.seek(toOffset: UInt64(offset))
        guard let data = try handle.read(upToCount: count) else { return [] }
        return [UInt8](data)
    }

    private func fileBytes() throws -> Int {
        guard let handle else { throw StoreError("\(directory.path): store is closed") }
        return Int(try handle.seekToEnd())
    }

    static func writeJSON(_ object: JSONObject, to url: URL) throws {
        let text = JSON.object(object).serialized(indent: 2) + "\n"
        try Data(text.utf8).write(to: url, options: .atomic)
    }
}
