import CAcre
import Foundation

/// The core's byte-level BPE tokenizer (`acre_tokenizer`): the bundle's tokenizer.json.
public final class Tokenizer {
    let handle: OpaquePointer

    /// The tokenizer the bundle ships.
    public convenience init(bundle: AcreBundle) throws {
        var out: OpaquePointer?
        try check(acre_bundle_tokenizer(bundle.handle, &out))
        self.init(handle: out!)
    }

    /// A Hugging Face tokenizer.json the core can run (anything else: an AcreError of kind "tokenizer").
    public convenience init(contentsOf url: URL) throws {
        var out: OpaquePointer?
        try check(acre_tokenizer_open(url.path, &out))
        self.init(handle: out!)
    }

    private init(handle: OpaquePointer) { self.handle = handle }

    deinit { acre_tokenizer_free(handle) }

    /// Ids of the model vocabulary and the added tokens.
    public var vocabularySize: Int { Int(acre_tokenizer_vocab_size(handle)) }

    /// Ids of `text`, no special tokens added (those written in the text are recognised).
    public func encode(_ text: String) throws -> [Int32] {
        try encodeWithOffsets(text, offsets: false).ids
    }

    /// Ids of `text` and each id's byte range in its UTF-8 ([first, end) per id, flat).
    public func encodeWithByteOffsets(_ text: String) throws -> (ids: [Int32], offsets: [UInt32]) {
        try encodeWithOffsets(text, offsets: true)
    }

    private func encodeWithOffsets(_ text: String, offsets wanted: Bool) throws -> (ids: [Int32], offsets: [UInt32]) {
        try withUTF8(text) { chars, count in
            if count == 0 { return ([], []) }
            var ids = [Int32](repeating: 0, count: count)  // every id covers at least one byte
            var offsets = [UInt32](repeating: 0, count: wanted ? 2 * count : 0)
            var n = 0
            let status = ids.withUnsafeMutableBufferPointer { idp in
                offsets.withUnsafeMutableBufferPointer { op in
                    wanted
                        ? acre_tokenize_offsets(handle, chars, count, idp.baseAddress, op.baseAddress, count, &n)
                        : acre_tokenize(handle, chars, count, idp.baseAddress, count, &n)
                }
            }
            try check(status)
            return (Array(ids.prefix(n)), wanted ? Array(offsets.prefix(2 * n)) : [])
        }
    }

    /// UTF-8 text of `ids` (bytes that are not valid UTF-8 become U+FFFD), special tokens left out
    /// when `skipSpecial`.
    public func decode(_ ids: [Int32], skipSpecial: Bool = true) throws -> String {
        if ids.isEmpty { return "" }
        var capacity = 8 * ids.count + 16
        while true {
            var bytes = [UInt8](repeating: 0, count: capacity)
            var n = 0
            let status = ids.withUnsafeBufferPointer { idp in
                bytes.withUnsafeMutableBufferPointer { out in
                    out.withMemoryRebound(to: CChar.self) { chars in
                        acre_detokenize(handle, idp.baseAddress, ids.count, skipSpecial ? 1 : 0, chars.baseAddress,
                                        capacity, &n)
                    }
                }
            }
            if status == ACRE_ERR_BUFFER_TOO_SMALL && n > capacity {
                capacity = n
                continue
            }
            try check(status)
            return String(decoding: bytes.prefix(n), as: UTF8.self)
        }
    }

    /// The id of a token as the vocabulary or the added tokens write it ("<|im_end|>"), nil if none.
    public func id(of token: String) -> Int32? {
        var id: Int32 = 0
        return acre_token_to_id(handle, token, &id) == ACRE_OK ? id : nil
    }
}
