import CAcre
import Foundation

/// A call into the core that failed: its status (`kind` is `acre_status_name`, such as "bundle",
/// "store", "invalid_argument") and the message `acre_last_error()` gave for it on this thread.
public struct AcreError: Error, LocalizedError, CustomStringConvertible {
    public let code: Int
    public let kind: String
    public let message: String

    public var errorDescription: String? { message }
    public var description: String { "\(kind): \(message)" }
    /// A progress callback stopped an ingest (its store keeps the last checkpoint: ingest again to resume).
    public var isCancelled: Bool { code == Int(ACRE_ERR_CANCELLED.rawValue) }

    init(status: acre_status, message: String) {
        code = Int(status.rawValue)
        kind = String(cString: acre_status_name(status))
        self.message = message
    }

    /// The error of the call that just returned `status`, on this thread.
    static func last(_ status: acre_status) -> AcreError {
        AcreError(status: status, message: String(cString: acre_last_error()))
    }

    /// Bad input refused by this layer before it reaches the core (as the core would refuse it).
    static func input(_ message: String) -> AcreError {
        AcreError(status: ACRE_ERR_INVALID_ARGUMENT, message: message)
    }
}

/// Throws the core's error for a status other than ACRE_OK.
@inline(__always)
func check(_ status: acre_status) throws {
    if status != ACRE_OK { throw AcreError.last(status) }
}

/// `text`'s UTF-8 bytes as a C pointer and a length (embedded NULs included; never a NULL pointer).
func withUTF8<R>(_ text: String, _ body: (UnsafePointer<CChar>, Int) throws -> R) rethrows -> R {
    var text = text
    return try text.withUTF8 { bytes in
        try bytes.withMemoryRebound(to: CChar.self) { chars in
            if let base = chars.baseAddress { return try body(base, chars.count) }
            var empty: CChar = 0
            return try body(&empty, 0)
        }
    }
}

/// A C string for an optional String (NULL for nil), valid during `body`.
func withOptionalCString<R>(_ text: String?, _ body: (UnsafePointer<CChar>?) throws -> R) rethrows -> R {
    guard let text else { return try body(nil) }
    return try text.withCString { try body($0) }
}

/// The core's ABI: the version of the library as built (`acre_abi_version()`) and of the header this
/// package compiled against (`ACRE_ABI_VERSION`). They differ only if a stale build product is linked.
public enum AcreABI {
    public static var loaded: Int { Int(acre_abi_version()) }
    public static var header: Int { Int(ACRE_ABI_VERSION) }
    public static var matches: Bool { loaded == header }
}
