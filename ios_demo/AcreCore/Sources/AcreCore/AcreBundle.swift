import Foundation

/// A bundle: `manifest.json`, program files and the tokenizer (docs/bundle.md, acre/bundle.py).
///
/// `open` validates in the reference runtime's order and stops at the first problem with a
/// BundleError naming the file: the directory and manifest exist; the manifest is JSON with the right
/// format, then version; required fields are present and well-formed (program and tokenizer paths are
/// checked while reading them); chunk, pot, layers and vocab are positive; every listed file name stays
/// inside the bundle; then, in manifest order, every listed file exists, has its size and its sha256;
/// finally every program has a checksum entry.
public struct AcreBundle {
    public static let format = "acre-bundle"
    public static let formatVersion = 2
    public static let manifestName = "manifest.json"
    public static let tokenizerDirName = "tokenizer"

    public let root: URL
    public let manifest: JSON
    public let geometry: Geometry
    public let chunk: Int
    public let pot: Int

    public static func open(_ root: URL, verifyChecksums: Bool = true) throws -> AcreBundle {
        guard isDirectory(root) else { throw BundleError(.notFound, "\(root.path): bundle directory not found") }
        let manifestURL = root.appendingPathComponent(manifestName)
        guard isFile(manifestURL) else {
            throw BundleError(.notFound, "\(manifestURL.path): missing; not an acre bundle")
        }
        let manifest: JSON
        do {
            let data = try Data(contentsOf: manifestURL)
            guard String(data: data, encoding: .utf8) != nil else { throw JSONError(description: "not UTF-8") }
            manifest = try JSON.parse(data)
        } catch {
            throw BundleError(.json, "\(manifestURL.path): not valid JSON (\(error))")
        }
        let fields = try validate(manifest, root: root)
        try verifyFiles(fields.files, programs: fields.programs, root: root, verifyChecksums: verifyChecksums)
        return AcreBundle(
            root: root, manifest: manifest, geometry: fields.geometry, chunk: fields.chunk, pot: fields.pot)
    }

    private struct Fields {
        let geometry: Geometry
        let chunk: Int
        let pot: Int
        let files: JSONObject
        let programs: JSONObject
    }

    private static func validate(_ m: JSON, root: URL) throws -> Fields {
        let place = root.appendingPathComponent(manifestName).path
        guard case .object = m, m["format"] == .string(format) else {
            throw BundleError(.format, "\(place): not an acre bundle manifest (format is not '\(format)')")
        }
        // Python compares with ==, so 1.0 (and true) pass as version 1 there too
        let version = m["version"]
        guard version?.number == Double(formatVersion) || version == .bool(true) else {
            let shown = version?.pythonString ?? "None"
            throw BundleError(
                .version,
                "\(place): bundle format version \(shown), this acre reads version \(formatVersion); "
                    + "re-export the bundle with this acre")
        }
        let geometry: Geometry
        let chunk: Int
        let pot: Int
        let files: JSON
        let programs: JSONObject
        do {
            geometry = try Geometry(json: m["model"]?["geometry"])
            guard let c = m["step"]?["chunk"]?.pythonInt else { throw FieldError("step.chunk") }
            guard let p = m["step"]?["pot"]?.pythonInt else { throw FieldError("step.pot") }
            guard let f = m["files"] else { throw FieldError("files") }
            guard let table = m["programs"]?.object else { throw FieldError("programs") }
            chunk = c
            pot = p
            files = f
            programs = table
            for (_, info) in programs.entries {
                guard let file = info["file"] else { throw FieldError("programs.*.file") }
                try checkRelative(file.pythonString, place)  // a BundleError(.path) passes through
            }
            guard let tokenizerDir = m["tokenizer"]?["dir"] else { throw FieldError("tokenizer.dir") }
            try checkRelative(tokenizerDir.pythonString, place)
            guard let eos = m["tokenizer"]?["eos_token_ids"]?.array, eos.allSatisfy({ $0.pythonInt != nil }) else {
                throw FieldError("tokenizer.eos_token_ids")
            }
        } catch let error as FieldError {
            throw BundleError(.field, "\(place): missing or malformed field (\(error.name))")
        }
        guard min(chunk, pot, geometry.layers, geometry.vocab) >= 1, case .object(let table) = files else {
            throw BundleError(.field, "\(place): malformed field: chunk, pot, layers and vocab must be positive")
        }
        for name in table.keys { try checkRelative(name, place) }
        return Fields(geometry: geometry, chunk: chunk, pot: pot, files: table, programs: programs)
    }

    private static func verifyFiles(
        _ files: JSONObject, programs: JSONObject, root: URL, verifyChecksums: Bool
    ) throws {
        for (name, info) in files.entries {
            let url = root.appendingPathComponent(name)
            guard isFile(url) else { throw BundleError(.missing, "\(url.path): missing from the bundle") }
            let size = try fileSize(url)
            let listed = info["bytes"]
            guard let expected = listed?.number, expected == Double(size) else {
                let shown = listed?.pythonString ?? "None"
                throw BundleError(.size, "\(url.path): \(size) bytes, manifest says \(shown) (truncated or replaced)")
            }
            if verifyChecksums {
                let digest = try Digests.sha256Hex(ofFile: url)
                guard info["sha256"] == .string(digest) else {
                    throw BundleError(.checksum, "\(url.path): sha256 checksum mismatch (file modified or corrupt)")
                }
            }
        }
        let place = root.appendingPathComponent(manifestName).path
        for (engine, info) in programs.entries {
            let file = info["file"]?.pythonString ?? ""
            guard files.keys.contains(where: { $0 == file || $0.hasPrefix(file + "/") }) else {
                throw BundleError(.unlisted, "\(place): \(engine) program \(file) has no checksum entry")
            }
        }
    }

    /// A manifest may only name files inside its bundle.
    static func checkRelative(_ name: String, _ place: String) throws {
        let parts = name.split(separator: "/", omittingEmptySubsequences: true)
        if name.isEmpty || name.hasPrefix("/") || parts.contains("..") || name.contains("\\") {
            throw BundleError(.path, "\(place): file name '\(name)' points outside the bundle")
        }
    }

    // MARK: - what the runtime reads from it

    public var kvDtype: String { manifest["step"]?["kv_dtype"]?.string ?? "float32" }

    public var programs: JSONObject { manifest["programs"]?.object ?? JSONObject() }

    /// The program file of an engine ("coreml", "executorch", "onnx").
    public func programURL(_ engine: String) throws -> URL {
        guard let info = programs[engine], let file = info["file"]?.string else {
            let have = programs.keys.sorted().joined(separator: ", ")
            throw BundleError(
                .noProgram, "\(root.path): no \(engine) program in this bundle (it has: \(have.isEmpty ? "none" : have))")
        }
        return root.appendingPathComponent(file)
    }

    /// Entry point name -> rows, e.g. ["prefill": 128, "decode": 1].
    public func methods(_ engine: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for (name, rows) in programs[engine]?["methods"]?.object?.entries ?? [] {
            if let rows = rows.pythonInt { out[name] = rows }
        }
        return out
    }

    public var tokenizerURL: URL {
        root.appendingPathComponent(manifest["tokenizer"]?["dir"]?.string ?? AcreBundle.tokenizerDirName)
    }

    public var eosTokenIds: [Int] { manifest["tokenizer"]?["eos_token_ids"]?.array?.compactMap { $0.pythonInt } ?? [] }

    public var bosTokenId: Int? { manifest["tokenizer"]?["bos_token_id"]?.pythonInt }

    /// Layers holding a retrieval head, whose queries come back as q_probe.
    public var probeLayers: [Int] { manifest["step"]?["probe_layers"]?.array?.compactMap { $0.pythonInt } ?? [] }

    /// The calibrated retrieval heads as (layer, query head).
    public var signalHeads: [(layer: Int, head: Int)] {
        (manifest["step"]?["signal_heads"]?.array ?? []).compactMap { pair -> (layer: Int, head: Int)? in
            guard let items = pair.array, items.count == 2, let layer = items[0].pythonInt,
                let head = items[1].pythonInt
            else { return nil }
            return (layer: layer, head: head)
        }
    }

    /// Identifies the model and programs that produced an L2 store's activations (session.py
    /// bundle_fingerprint): sha256 of the geometry, the step section and the programs' checksums.
    public var fingerprint: String {
        var programs = JSONObject()
        let files = manifest["files"]?.object ?? JSONObject()
        for name in files.keys.sorted() where !name.hasPrefix(AcreBundle.tokenizerDirName + "/") {
            programs[name] = files[name]?["sha256"] ?? .null
        }
        let blob = JSON.object(
            JSONObject([
                ("geometry", manifest["model"]?["geometry"] ?? .null),
                ("step", manifest["step"] ?? .null),
                ("programs", .object(programs)),
            ]))
        return Digests.sha256Hex(Data(blob.serialized(indent: nil, sortKeys: true).utf8))
    }
}

// MARK: - files

func isFile(_ url: URL) -> Bool {
    var directory: ObjCBool = false
    return FileManager.default.fileExists(atPath: url.path, isDirectory: &directory) && !directory.boolValue
}

func isDirectory(_ url: URL) -> Bool {
    var directory: ObjCBool = false
    return FileManager.default.fileExists(atPath: url.path, isDirectory: &directory) && directory.boolValue
}

func fileSize(_ url: URL) throws -> Int {
    let handle = try FileHandle(forReadingFrom: url)
    defer { try? handle.close() }
    return Int(try handle.seekToEnd())
}
