import AcreCore
import CoreML
import Foundation

/// Runs the bundle's Core ML step program, `model.mlpackage`: a multifunction ML program with
/// functions `prefill` (C rows) and `decode` (1 row), the step signature of docs/bundle.md. The
/// integer inputs and the mask are int32 in Core ML (it has no int64 or bool arrays); pot_k/pot_v and
/// k_new/v_new are the bundle's kv_dtype. Each array is filled in the data type the model declares, so
/// float32 and float16 K/V both work; a float32 pot is handed over without a copy.
final class CoreMLEngine: StepEngine {
    private let prefill: MLModel
    private let decode: MLModel?
    private let chunk: Int
    private let geometry: Geometry
    private var potViews: [String: MLMultiArray] = [:]  // per model function and name: views of / staging for the pot
    private weak var viewedPot: Pot?

    private init(prefill: MLModel, decode: MLModel?, chunk: Int, geometry: Geometry) {
        self.prefill = prefill
        self.decode = decode
        self.chunk = chunk
        self.geometry = geometry
    }

    /// Compile the package once (kept in `cache`, keyed by the bundle's fingerprint) and load both functions.
    static func load(bundle: AcreBundle, cache: URL) async throws -> CoreMLEngine {
        let package = try bundle.programURL("coreml")
        let compiled = cache.appendingPathComponent("\(bundle.fingerprint).mlmodelc")
        if !FileManager.default.fileExists(atPath: compiled.path) {
            let temporary = try await MLModel.compileModel(at: package)
            try FileManager.default.createDirectory(at: cache, withIntermediateDirectories: true)
            try? FileManager.default.removeItem(at: compiled)
            try FileManager.default.moveItem(at: temporary, to: compiled)
        }
        let methods = bundle.methods("coreml")
        let prefill = try model(compiled, function: methods.isEmpty ? nil : "prefill")
        let decode = methods["decode"] == 1 ? try model(compiled, function: "decode") : nil
        return CoreMLEngine(prefill: prefill, decode: decode, chunk: bundle.chunk, geometry: bundle.geometry)
    }

    private static func model(_ url: URL, function: String?) throws -> MLModel {
        let configuration = MLModelConfiguration()
        configuration.computeUnits = .all
        if let function { configuration.functionName = function }
        return try MLModel(contentsOf: url, configuration: configuration)
    }

    func rows(for count: Int) -> Int {
        count == 1 && decode != nil ? 1 : chunk
    }

    func step(tokens: [Int32], positions: [Int32], pot: Pot, lastIndex: Int) throws -> StepOutput {
        let single = tokens.count == 1 && decode != nil
        let model = single ? decode! : prefill
        let function = single ? "decode" : "prefill"
        if viewedPot !== pot {
            potViews = [:]
            viewedPot = pot
        }
        let inputs = model.modelDescription.inputDescriptionsByName
        let p = pot.capacity
        var features: [String: Any] = [:]
        features["tokens"] = try MultiArrays.make(inputs["tokens"], shape: [tokens.count]) { Float(tokens[$0]) }
        features["positions"] = try MultiArrays.make(inputs["positions"], shape: [positions.count]) {
            Float(positions[$0])
        }
        features["pot_positions"] = try MultiArrays.make(inputs["pot_positions"], shape: [p]) {
            Float(pot.positions[$0])
        }
        features["pot_mask"] = try MultiArrays.make(inputs["pot_mask"], shape: [p]) { pot.mask[$0] ? 1 : 0 }
        features["last_index"] = try MultiArrays.make(inputs["last_index"], shape: [1]) { _ in Float(lastIndex) }
        let shape = [geometry.layers, geometry.kvHeads, p, geometry.headDim]
        for (name, buffer) in [("pot_k", pot.k), ("pot_v", pot.v)] {
            features[name] = try potArray(name, function: function, buffer: buffer, shape: shape, input: inputs[name])
        }
        let result = try model.prediction(from: MLDictionaryFeatureProvider(dictionary: features))
        func output(_ name: String) throws -> [Float] {
            guard let array = result.featureValue(for: name)?.multiArrayValue else {
                throw EngineError("Core ML step program: no output \(name)")
            }
            return MultiArrays.read(array)
        }
        return StepOutput(
            logits: try output("logits"), kNew: try output("k_new"), vNew: try output("v_new"),
            potAttention: try output("pot_attention"), qProbe: try output("q_probe"), rows: tokens.count)
    }

    /// pot_k / pot_v: a no-copy view of the pot when the model takes float32, else a staging array
    /// (made once) refilled in the model's type on every call.
    private func potArray(
        _ name: String, function: String, buffer: UnsafeMutableBufferPointer<Float>, shape: [Int],
        input: MLFeatureDescription?
    ) throws -> MLMultiArray {
        let key = "\(function)/\(name)"
        let dataType = input?.multiArrayConstraint?.dataType ?? .float32
        if let view = potViews[key] {
            if dataType != .float32 { MultiArrays.fill(view) { buffer[$0] } }
            return view
        }
        let array: MLMultiArray
        if dataType == .float32, let base = buffer.baseAddress {
            var strides = [Int](repeating: 1, count: shape.count)
            for axis in stride(from: shape.count - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * shape[axis + 1] }
            array = try MLMultiArray(
                dataPointer: UnsafeMutableRawPointer(base), shape: shape.map { NSNumber(value: $0) }, dataType: .float32,
                strides: strides.map { NSNumber(value: $0) }, deallocator: nil)
        } else {
            array = try MultiArrays.make(input, shape: shape) { buffer[$0] }
        }
        potViews[key] = array
        return array
    }
}

/// MLMultiArray in and out, honouring the data type and the strides Core ML gives (outputs computed
/// on the Neural Engine often have padded rows).
enum MultiArrays {
    /// An array of `shape` in the input's declared data type (float32 if it declares none), filled with
    /// value(i) for each row-major index i.
    static func make(_ input: MLFeatureDescription?, shape: [Int], value: (Int) -> Float) throws -> MLMultiArray {
        let dataType = input?.multiArrayConstraint?.dataType ?? .float32
        let array = try MLMultiArray(shape: shape.map { NSNumber(value: $0) }, dataType: dataType)
        fill(array, value)
        return array
    }

    static func fill(_ array: MLMultiArray, _ value: (Int) -> Float) {
        let shape = array.shape.map { $0.intValue }
        let dataType = array.dataType
        array.withUnsafeMutableBytes { raw, strides in
            guard let base = raw.baseAddress else { return }
            forEachOffset(shape: shape, strides: strides) { index, offset in
                let x = value(index)
                switch dataType {
                case .int32: base.assumingMemoryBound(to: Int32.self)[offset] = Int32(x)
                case .float16: base.assumingMemoryBound(to: UInt16.self)[offset] = Half.fromFloat(x)
                case .double: base.assumingMemoryBound(to: Double.self)[offset] = Double(x)
                default: base.assumingMemoryBound(to: Float.self)[offset] = x
                }
            }
        }
    }

    /// The values in row-major order, as float32.
    static func read(_ array: MLMultiArray) -> [Float] {
        let shape = array.shape.map { $0.intValue }
        let strides = array.strides.map { $0.intValue }
        let dataType = array.dataType
        var out = [Float](repeating: 0, count: shape.reduce(1, *))
        array.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            forEachOffset(shape: shape, strides: strides) { index, offset in
                switch dataType {
                case .int32: out[index] = Float(base.assumingMemoryBound(to: Int32.self)[offset])
                case .float16: out[index] = Half.toFloat(base.assumingMemoryBound(to: UInt16.self)[offset])
                case .double: out[index] = Float(base.assumingMemoryBound(to: Double.self)[offset])
                default: out[index] = base.assumingMemoryBound(to: Float.self)[offset]
                }
            }
        }
        return out
    }

    /// Calls body(row-major index, storage offset in elements) for every element.
    static func forEachOffset(shape: [Int], strides: [Int], _ body: (Int, Int) -> Void) {
        let count = shape.reduce(1, *)
        guard count > 0 else { return }
        var index = [Int](repeating: 0, count: shape.count)
        var offset = 0
        for logical in 0..<count {
            body(logical, offset)
            var axis = shape.count - 1
            while axis >= 0 {
                index[axis] += 1
                offset += strides[axis]
                if index[axis] < shape[axis] { break }
                offset -= strides[axis] * shape[axis]
                index[axis] = 0
                axis -= 1
            }
        }
    }
}
