/// How the spans of one L2 store are laid out (acre/runtime/l2.py StoreMeta), from store.json `meta`.
///
/// A record of spans.bin is: header (28 bytes, SpanHeader), tokens int32 [S], k and v [L, Hkv, S, D]
/// (float16, or int8), k_scale and v_scale float16 [L, Hkv, S] (int8 only), reps float16 [Lp, Hkv, R, D].
public enum L2Codec: String {
    case float16
    case int8
}

public struct StoreMeta: Equatable {
    public var fingerprint: String  // the model and programs that wrote it (AcreBundle.fingerprint)
    public var spanTokens: Int  // S
    public var layers: Int  // L
    public var kvHeads: Int  // Hkv
    public var headDim: Int  // D
    public var probeLayers: Int  // Lp: how many layers the representative keys cover
    public var reps: Int  // R representative keys per span, probe layer and KV head
    public var codec: L2Codec

    public init(
        fingerprint: String, spanTokens: Int, layers: Int, kvHeads: Int, headDim: Int, probeLayers: Int,
        reps: Int, codec: L2Codec = .float16
    ) {
        self.fingerprint = fingerprint
        self.spanTokens = spanTokens
        self.layers = layers
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.probeLayers = probeLayers
        self.reps = reps
        self.codec = codec
    }

    /// store.json `meta`; every field is required but the codec (float16 by default).
    init(json: JSON?, place: String) throws {
        guard let json, case .object(let object) = json else {
            throw StoreError("\(place): unreadable store header (no meta)")
        }
        let known: Set<String> = [
            "fingerprint", "span_tokens", "layers", "kv_heads", "head_dim", "probe_layers", "reps", "codec",
        ]
        if let unknown = object.keys.first(where: { !known.contains($0) }) {
            throw StoreError("\(place): unreadable store header (unknown meta field \(unknown))")
        }
        func int(_ key: String) throws -> Int {
            guard case .int(let value)? = json[key], value > 0 else {
                throw StoreError("\(place): unreadable store header (meta.\(key))")
            }
            return value
        }
        guard let fingerprint = json["fingerprint"]?.string else {
            throw StoreError("\(place): unreadable store header (meta.fingerprint)")
        }
        let codecName = json["codec"]?.string ?? "float16"
        guard let codec = L2Codec(rawValue: codecName) else {
            throw StoreError("\(place): unknown L2 codec '\(codecName)'; this acre reads float16 and int8")
        }
        try self.init(
            fingerprint: fingerprint, spanTokens: int("span_tokens"), layers: int("layers"),
            kvHeads: int("kv_heads"), headDim: int("head_dim"), probeLayers: int("probe_layers"),
            reps: int("reps"), codec: codec)
    }

    /// In the field order Python's dataclasses.asdict writes.
    public var json: JSON {
        .object(
            JSONObject([
                ("fingerprint", .string(fingerprint)), ("span_tokens", .int(spanTokens)), ("layers", .int(layers)),
                ("kv_heads", .int(kvHeads)), ("head_dim", .int(headDim)), ("probe_layers", .int(probeLayers)),
                ("reps", .int(reps)), ("codec", .string(codec.rawValue)),
            ]))
    }

    // MARK: - record layout

    /// Values of k (or v) in a record: L * Hkv * S * D.
    public var kvCount: Int { layers * kvHeads * spanTokens * headDim }
    /// Rows of k (or v), one int8 scale each: L * Hkv * S.
    public var scaleCount: Int { layers * kvHeads * spanTokens }
    /// Values of one span's representative keys: Lp * Hkv * R * D.
    public var repsCount: Int { probeLayers * kvHeads * reps * headDim }

    var kvItemBytes: Int { codec == .int8 ? 1 : 2 }
    var tokensOffset: Int { SpanHeader.size }
    var kOffset: Int { tokensOffset + 4 * spanTokens }
    var vOffset: Int { kOffset + kvCount * kvItemBytes }
    var kScaleOffset: Int { vOffset + kvCount * kvItemBytes }  // int8 only
    var vScaleOffset: Int { kScaleOffset + scaleCount * 2 }  // int8 only
    var repsOffset: Int { codec == .int8 ? vScaleOffset + scaleCount * 2 : vOffset + kvCount * kvItemBytes }

    public var recordBytes: Int { repsOffset + repsCount * 2 }
}

/// The fixed header of a record, `<4sIIQII`: magic "ACRS", span number, tokens n, first document token,
/// crc32 of the record (taken with this field zero), crc32 of the S token ids alone.
struct SpanHeader {
    static let size = 28
    static let magic: [UInt8] = [0x41, 0x43, 0x52, 0x53]  // "ACRS"
    static let crcOffset = 20

    var magicOK: Bool
    var span: UInt32
    var count: UInt32
    var start: UInt64
    var crc: UInt32
    var tokenCRC: UInt32

    init(_ raw: [UInt8]) {
        guard raw.count >= SpanHeader.size else {  // a short read: nothing in it can be trusted
            magicOK = false
            span = 0
            count = 0
            start = 0
            crc = 0
            tokenCRC = 0
            return
        }
        magicOK = Array(raw[0..<4]) == SpanHeader.magic
        span = ByteIO.u32(raw, 4)
        count = ByteIO.u32(raw, 8)
        start = ByteIO.u64(raw, 12)
        crc = ByteIO.u32(raw, 20)
        tokenCRC = ByteIO.u32(raw, 24)
    }

    static func write(into record: inout [UInt8], span: Int, count: Int, start: Int, crc: UInt32, tokenCRC: UInt32) {
        for i in 0..<4 { record[i] = magic[i] }
        ByteIO.put32(&record, 4, UInt32(span))
        ByteIO.put32(&record, 8, UInt32(count))
        ByteIO.put64(&record, 12, UInt64(start))
        ByteIO.put32(&record, 20, crc)
        ByteIO.put32(&record, 24, tokenCRC)
    }

    /// crc32 of a whole record with its crc field read as zero.
    static func recordCRC(_ raw: [UInt8]) -> UInt32 {
        var copy = raw
        for i in crcOffset..<(crcOffset + 4) { copy[i] = 0 }
        return CRC32.checksum(copy)
    }
}
