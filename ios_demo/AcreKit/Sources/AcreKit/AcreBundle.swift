import CAcre
import Foundation

/// The model geometry and step shapes a bundle's manifest promises (`acre_geometry`).
public struct Geometry: Equatable {
    public let layers, heads, kvHeads, headDim, hidden, intermediate, vocab, window: Int
    public let ropeTheta, rmsEps: Double
    /// Rows of the prefill method (C) and the pot's capacity (P).
    public let chunk, pot: Int
    /// dtype of the pot's K/V ("float32" or "float16").
    public let kvDtype: String
    let kvDtypeValue: acre_dtype
}

/// An opened and verified bundle directory (`acre_bundle_open`). Named AcreBundle, not Bundle, so that
/// it does not collide with Foundation.Bundle in code that imports both.
public final class AcreBundle {
    let handle: OpaquePointer
    public let url: URL
    public let geometry: Geometry
    /// manifest.json as the core read it.
    public let manifestJSON: String
    let ropeInvFreq: [Double]
    /// The tokenizer directory the manifest names (tokenizer.json, tokenizer_config.json, chat template).
    public let tokenizerDirectory: URL

    /// Opens `url`; with `verifyChecksums` the core checks every listed file's sha256 (slow for large
    /// programs: the first open of a copied bundle is the time to do it). A refusal is an AcreError of
    /// kind "bundle" naming the file.
    public init(_ url: URL, verifyChecksums: Bool = true) throws {
        var out: OpaquePointer?
        try check(acre_bundle_open(url.path, verifyChecksums ? 1 : 0, &out))
        guard let handle = out else { throw AcreError.input("acre_bundle_open gave no bundle") }
        var g = acre_geometry()
        let status = acre_bundle_geometry(handle, &g)
        if status != ACRE_OK {
            let error = AcreError.last(status)
            acre_bundle_free(handle)
            throw error
        }
        let text = String(cString: acre_bundle_manifest_json(handle))
        guard let manifest = try? JSONDecoder().decode(ManifestParts.self, from: Data(text.utf8)) else {
            acre_bundle_free(handle)
            throw AcreError.input("\(url.path)/manifest.json: no step.rope_inv_freq or tokenizer.dir")
        }
        self.handle = handle
        self.url = url
        manifestJSON = text
        ropeInvFreq = manifest.step.rope_inv_freq
        tokenizerDirectory = url.appendingPathComponent(manifest.tokenizer.dir, isDirectory: true)
        geometry = Geometry(
            layers: Int(g.layers), heads: Int(g.heads), kvHeads: Int(g.kv_heads), headDim: Int(g.head_dim),
            hidden: Int(g.hidden), intermediate: Int(g.intermediate), vocab: Int(g.vocab), window: Int(g.window),
            ropeTheta: g.rope_theta, rmsEps: g.rms_eps, chunk: Int(g.chunk), pot: Int(g.pot),
            kvDtype: String(cString: acre_dtype_name(g.kv_dtype)), kvDtypeValue: g.kv_dtype)
    }

    deinit { acre_bundle_free(handle) }

    /// The program file for an engine ("executorch", "coreml", "onnx"); an AcreError if the bundle has none.
    public func programURL(_ engine: String) throws -> URL {
        var path: UnsafePointer<CChar>?
        try check(acre_bundle_program_path(handle, engine, &path))
        guard let path else { throw AcreError.input("no \(engine) program path") }
        return URL(fileURLWithPath: String(cString: path))
    }

    /// Names the stores this bundle's sessions write (a store serves only its own bundle's): the core's
    /// `acre_bundle_fingerprint`, the same one the Python host, the JNI and acre-cli use, so a store any
    /// of them wrote opens here too.
    public var fingerprint: String {
        String(cString: acre_bundle_fingerprint(handle))
    }

    /// The manifest's `methods` of a program ({"prefill": C, "decode": 1}), empty if it lists none.
    public func methods(_ engine: String) -> [String: Int] {
        guard let data = manifestJSON.data(using: .utf8),
            let manifest = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let programs = manifest["programs"] as? [String: Any],
            let program = programs[engine] as? [String: Any],
            let methods = program["methods"] as? [String: Any]
        else { return [:] }
        return methods.compactMapValues { ($0 as? NSNumber)?.intValue }
    }
}

/// The parts of the manifest this layer reads itself (the core reads the rest).
private struct ManifestParts: Decodable {
    struct Step: Decodable { let rope_inv_freq: [Double] }
    struct Tokenizer: Decodable { let dir: String }
    let step: Step
    let tokenizer: Tokenizer
}
