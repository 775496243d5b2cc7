import Foundation

/// A JSON value that keeps the order of object keys (the bundle checks its files in manifest order,
/// as Python's dict does) and tells integers from floats, so what is written back reads like
/// Python's `json.dumps`. Numbers are parsed with `Double(String)`, which rounds correctly, so the
/// float64 values of the shared test vectors arrive bit for bit.
public enum JSON: Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSON])
    case object(JSONObject)
}

/// Object members in insertion order; a repeated key keeps its first place and its last value (Python's rule).
public struct JSONObject: Equatable {
    public private(set) var keys: [String] = []
    private var values: [String: JSON] = [:]

    public init() {}

    public init(_ pairs: [(String, JSON)]) {
        for (key, value) in pairs { self[key] = value }
    }

    public subscript(key: String) -> JSON? {
        get { values[key] }
        set {
            if let newValue {
                if values.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if values.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    public var entries: [(key: String, value: JSON)] { keys.map { (key: $0, value: values[$0]!) } }
    public var count: Int { keys.count }
}

public struct JSONError: Error, CustomStringConvertible {
    public let description: String
}

// MARK: - reading values

extension JSON {
    public subscript(key: String) -> JSON? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var object: JSONObject? {
        if case .object(let object) = self { return object }
        return nil
    }

    public var array: [JSON]? {
        if case .array(let items) = self { return items }
        return nil
    }

    public var string: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    public var bool: Bool? {
        if case .bool(let flag) = self { return flag }
        return nil
    }

    public var isNull: Bool { self == .null }

    /// An integer or a float, as a Double.
    public var number: Double? {
        switch self {
        case .int(let value): return Double(value)
        case .double(let value): return value
        default: return nil
        }
    }

    /// What Python's `int(x)` makes of a manifest value: ints, floats (truncated), bools, numeric strings.
    public var pythonInt: Int? {
        switch self {
        case .int(let value): return value
        case .double(let value): return value.isFinite && Swift.abs(value) < 9.0e18 ? Int(value) : nil
        case .bool(let flag): return flag ? 1 : 0
        case .string(let text): return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
        default: return nil
        }
    }

    /// What Python's `str(x)` makes of a value (used where the reference runtime formats a file name).
    public var pythonString: String {
        switch self {
        case .string(let text): return text
        case .null: return "None"
        case .bool(let flag): return flag ? "True" : "False"
        default: return serialized(indent: nil)
        }
    }
}

// MARK: - parsing

extension JSON {
    public static func parse(_ data: Data) throws -> JSON {
        var parser = JSONParser(bytes: [UInt8](data))
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.atEnd else { throw parser.error("trailing characters") }
        return value
    }

    public static func parse(_ text: String) throws -> JSON {
        try parse(Data(text.utf8))
    }

    public static func read(_ url: URL) throws -> JSON {
        try parse(Data(contentsOf: url))
    }
}

private struct JSONParser {
    let bytes: [UInt8]
    var i = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { i >= bytes.count }

    func error(_ what: String) -> JSONError {
        JSONError(description: "\(what) at byte \(i)")
    }

    func peek(_ ascii: Unicode.Scalar) -> Bool {
        i < bytes.count && bytes[i] == UInt8(ascii: ascii)
    }

    mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x09 || bytes[i] == 0x0A || bytes[i] == 0x0D {
            i += 1
        }
    }

    mutating func value(depth: Int) throws -> JSON {
        guard depth < 512 else { throw error("nested too deeply") }
        guard i < bytes.count else { throw error("unexpected end") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try literal("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null")
            return .null
        case UInt8(ascii: "N"):  // Python's json writes and reads NaN and Infinity
            try literal("NaN")
            return .double(.nan)
        case UInt8(ascii: "I"):
            try literal("Infinity")
            return .double(.infinity)
        default:
            return try number()
        }
    }

    mutating func literal(_ word: String) throws {
        let expected = Array(word.utf8)
        guard i + expected.count <= bytes.count, Array(bytes[i..<(i + expected.count)]) == expected else {
            throw error("unexpected character")
        }
        i += expected.count
    }

    mutating func number() throws -> JSON {
        let start = i
        if peek("-") {
            i += 1
            if peek("I") {
                try literal("Infinity")
                return .double(-.infinity)
            }
        }
        var integral = true
        while i < bytes.count {
            let c = bytes[i]
            if c >= 0x30 && c <= 0x39 {
                i += 1
            } else if c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
                || c == UInt8(ascii: "+") || c == UInt8(ascii: "-")
            {
                integral = false
                i += 1
            } else {
                break
            }
        }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        if integral, let value = Int(text) { return .int(value) }
        guard let value = Double(text) else { throw error("malformed number '\(text)'") }
        return .double(value)
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count,
            let value = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16)
        else { throw error("malformed \\u escape") }
        i += 4
        return value
    }

    mutating func string() throws -> String {
        i += 1  // the opening quote
        var out: [UInt8] = []
        while true {
            guard i < bytes.count else { throw error("unterminated string") }
            let c = bytes[i]
            i += 1
            if c == UInt8(ascii: "\"") { break }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                continue
            }
            guard i < bytes.count else { throw error("unterminated escape") }
            let escape = bytes[i]
            i += 1
            switch escape {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if code >= 0xD800 && code < 0xDC00 && peek("\\") && i + 1 < bytes.count
                    && bytes[i + 1] == UInt8(ascii: "u")
                {
                    let save = i
                    i += 2
                    let low = try hex4()
                    if low >= 0xDC00 && low < 0xE000 {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                    } else {
                        i = save
                    }
                }
                let scalar: Unicode.Scalar = Unicode.Scalar(code) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default:
                throw error("unknown escape")
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    mutating func array(depth: Int) throws -> JSON {
        i += 1
        var items: [JSON] = []
        skipSpace()
        if peek("]") {
            i += 1
            return .array(items)
        }
        while true {
            skipSpace()
            items.append(try value(depth: depth + 1))
            skipSpace()
            guard i < bytes.count else { throw error("unterminated array") }
            let c = bytes[i]
            i += 1
            if c == UInt8(ascii: "]") { return .array(items) }
            guard c == UInt8(ascii: ",") else { throw error("expected , or ]") }
        }
    }

    mutating func object(depth: Int) throws -> JSON {
        i += 1
        var object = JSONObject()
        skipSpace()
        if peek("}") {
            i += 1
            return .object(object)
        }
        while true {
            skipSpace()
            guard peek("\"") else { throw error("expected a key") }
            let key = try string()
            skipSpace()
            guard peek(":") else { throw error("expected :") }
            i += 1
            skipSpace()
            object[key] = try value(depth: depth + 1)
            skipSpace()
            guard i < bytes.count else { throw error("unterminated object") }
            let c = bytes[i]
            i += 1
            if c == UInt8(ascii: "}") { return .object(object) }
            guard c == UInt8(ascii: ",") else { throw error("expected , or }") }
        }
    }
}

// MARK: - writing

extension JSON {
    /// Python's `json.dumps(value, indent=indent, sort_keys=sortKeys)` with its default ensure_ascii:
    /// indent nil is the one-line form with ", " and ": " separators.
    public func serialized(indent: Int? = 2, sortKeys: Bool = false) -> String {
        var out = ""
        write(into: &out, indent: indent, level: 0, sortKeys: sortKeys)
        return out
    }

    private func write(into out: inout String, indent: Int?, level: Int, sortKeys: Bool) {
        func newline(_ depth: Int) {
            if let indent { out += "\n" + String(repeating: " ", count: indent * depth) }
        }
        switch self {
        case .null: out += "null"
        case .bool(let flag): out += flag ? "true" : "false"
        case .int(let value): out += String(value)
        case .double(let value): out += JSON.pythonFloat(value)
        case .string(let text): JSON.quote(text, into: &out)
        case .array(let items):
            if items.isEmpty {
                out += "[]"
                return
            }
            out += "["
            for (n, item) in items.enumerated() {
                if n > 0 { out += indent == nil ? ", " : "," }
                newline(level + 1)
                item.write(into: &out, indent: indent, level: level + 1, sortKeys: sortKeys)
            }
            newline(level)
            out += "]"
        case .object(let object):
            if object.count == 0 {
                out += "{}"
                return
            }
            var keys = object.keys
            if sortKeys {  // by code point, as Python sorts str
                keys.sort { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
            }
            out += "{"
            for (n, key) in keys.enumerated() {
                if n > 0 { out += indent == nil ? ", " : "," }
                newline(level + 1)
                JSON.quote(key, into: &out)
                out += ": "
                object[key]!.write(into: &out, indent: indent, level: level + 1, sortKeys: sortKeys)
            }
            newline(level)
            out += "}"
        }
    }

    static func pythonFloat(_ value: Double) -> String {
        if value.isNaN { return "NaN" }
        if value.isInfinite { return value < 0 ? "-Infinity" : "Infinity" }
        return value.description  // shortest round-trip digits, like Python's repr
    }

    static func quote(_ text: String, into out: inout String) {
        out += "\""
        for unit in text.utf16 {
            switch unit {
            case 0x22: out += "\\\""
            case 0x5C: out += "\\\\"
            case 0x0A: out += "\\n"
            case 0x0D: out += "\\r"
            case 0x09: out += "\\t"
            case 0x08: out += "\\b"
            case 0x0C: out += "\\f"
            case 0x20...0x7E: out.append(Character(Unicode.Scalar(UInt8(unit))))
            default:
                let hex = String(unit, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            }
        }
        out += "\""
    }
}
