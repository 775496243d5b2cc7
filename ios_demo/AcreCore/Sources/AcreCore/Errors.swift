import Foundation

/// Every error AcreCore throws on purpose. The message names the cause, and the file where there is one,
/// like the Python runtime's `acre.errors.AcreError` subclasses.
public protocol AcreError: LocalizedError, CustomStringConvertible {
    var message: String { get }
}

extension AcreError {
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// A bundle directory is missing, corrupt, of another version, or inconsistent (acre/bundle.py).
public struct BundleError: AcreError {
    /// What was wrong; the raw values are the `error` names of tests/vectors/bad_manifests.json.
    public enum Kind: String {
        case notFound = "not_found"  // no directory, or no manifest.json in it
        case json  // manifest.json is not UTF-8 JSON
        case format  // format is not "acre-bundle"
        case version  // version is not 1
        case field  // a required field is missing or malformed
        case path  // a file name is absolute or contains ".."
        case missing  // a listed file is absent
        case size  // a listed file has another size
        case checksum  // a listed file has another sha256
        case unlisted  // a program file has no checksum entry
        case noProgram = "no_program"  // the bundle has no program for the engine asked for
    }

    public let kind: Kind
    public let message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}

/// An L2 store is missing, corrupt, of another version, or belongs to another model (acre/runtime/l2.py).
public struct StoreError: AcreError {
    public let message: String
    public init(_ message: String) { self.message = message }
}

/// Text, token ids, a budget or a pot size that cannot be used.
public struct InputError: AcreError {
    public let message: String
    public init(_ message: String) { self.message = message }
}

/// The step program could not be loaded or run.
public struct EngineError: AcreError {
    public let message: String
    public init(_ message: String) { self.message = message }
}
