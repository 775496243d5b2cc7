import AcreKit
import CoreML
import Foundation

/// The bundle's Core ML step program, `model.mlpackage`, as AcreKit's StepProgram: the core calls it
/// through `acre_step_fn` for every step (docs/coreml.md). A multifunction ML program with `prefill`
/// (C rows, the default function) and `decode` (1 row), the step signature of docs/bundle.md. Core ML
/// has no int64, uint8 or bool arrays: `tokens`, `positions`, `last_index` and `pot_mask` go in as the
/// int32 the model declares. Each layer's `pot_k_i` / `pot_v_i` of the model's own dtype is handed to
/// Core ML without a copy (a view of the core's pot, which stays at one address); of another dtype it
/// is converted into a staging array. Outputs are copied into the core's buffers, honouring the strides
/// Core ML gives (outputs of the Neural Engine often have padded rows).
final class CoreMLEngine: StepProgram {
    private let prefill: MLModel
    private let decode: MLModel?
    private var views: [String: (address: UnsafeMutableRawPointer, array: MLMultiArray)] = [:]

    private init(prefill: MLModel, decode: MLModel?) {
        self.prefill = prefill
        self.decode = decode
    }

    /// Compiles the package once (kept in `cache`, keyed by the bundle's fingerprint) and loads both functions.
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
        return CoreMLEngine(prefill: prefill, decode: decode)
    }

    private static func model(_ url: URL, function: String?) throws -> MLModel {
        let configuration = MLModelConfiguration()
        configuration.computeUnits = .all
        if let function { configuration.functionName = function }
        return try MLModel(contentsOf: url, configuration: configuration)
    }

    func step(rows: Int, inputs: [StepTensor], outputs: [StepTensor]) throws {
        let function = rows == 1 ? "decode" : "prefill"
        guard let model = rows == 1 ? decode : prefill else {
            throw DemoError("the Core ML program has no decode function (programs.coreml.methods)")
        }
        let declared = model.modelDescription.inputDescriptionsByName
        var features: [String: Any] = [:]
        for tensor in inputs {
            let dataType = declared[tensor.name]?.multiArrayConstraint?.dataType ?? .float32
            features[tensor.name] = try input(tensor, dataType: dataType, key: "\(function)/\(tensor.name)")
        }
        let result = try model.prediction(from: MLDictionaryFeatureProvider(dictionary: features))
        for tensor in outputs {
            guard let array = result.featureValue(for: tensor.name)?.multiArrayValue else {
                throw DemoError("the Core ML step program gave no output \(tensor.name)")
            }
            try MultiArrays.copy(array, into: tensor)
        }
    }

    /// A view of the core's memory where the types agree and it stays put (the pot), else a converted copy.
    private func input(_ tensor: StepTensor, dataType: MLMultiArrayDataType, key: String) throws -> MLMultiArray {
        let pot = tensor.name.hasPrefix("pot_k") || tensor.name.hasPrefix("pot_v")
        guard pot, MultiArrays.dataType(of: tensor.dtype) == dataType, let base = tensor.buffer.baseAddress else {
            return try MultiArrays.make(tensor, dataType: dataType)
        }
        if let view = views[key], view.address == base { return view.array }
        let array = try MLMultiArray(
            dataPointer: base, shape: tensor.shape.map { NSNumber(value: $0) }, dataType: dataType,
            strides: MultiArrays.rowMajorStrides(tensor.shape).map { NSNumber(value: $0) }, deallocator: nil)
        views[key] = (base, array)
        return array
    }
}

/// StepTensor <-> MLMultiArray.
enum MultiArrays {
    static func dataType(of dtype: DType) -> MLMultiArrayDataType? {
        switch dtype {
        case .float32: return .float32
        case .float16: return .float16
        case .int32: return .int32
        default: return nil
        }
    }

    static func rowMajorStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        for axis in stride(from: shape.count - 2, through: 0, by: -1) { strides[axis] = strides[axis + 1] * shape[axis + 1] }
        return strides
    }

    /// A new array of `dataType` holding the tensor's values (integers exactly, as int32).
    static func make(_ tensor: StepTensor, dataType: MLMultiArrayDataType) throws -> MLMultiArray {
        let array = try MLMultiArray(shape: tensor.shape.map { NSNumber(value: $0) }, dataType: dataType)
        let source = tensor.buffer
        var failure: Error?
        array.withUnsafeMutableBytes { raw, strides in
            guard let base = raw.baseAddress else { return }
            forEachOffset(shape: tensor.shape, strides: strides) { i, offset in
                do {
                    switch dataType {
                    case .int32: base.assumingMemoryBound(to: Int32.self)[offset] = try integer(source, tensor.dtype, i)
                    case .double: base.assumingMemoryBound(to: Double.self)[offset] = Double(try real(source, tensor.dtype, i))
                    case .float16: try storeHalf(base, offset, try real(source, tensor.dtype, i))
                    default: base.assumingMemoryBound(to: Float.self)[offset] = try real(source, tensor.dtype, i)
                    }
                } catch {
                    failure = failure ?? error
                }
            }
        }
        if let failure { throw failure }
        return array
    }

    /// The array's values into the tensor's buffer (row-major, the tensor's dtype).
    static func copy(_ array: MLMultiArray, into tensor: StepTensor) throws {
        let shape = array.shape.map { $0.intValue }
        let strides = array.strides.map { $0.intValue }
        let count = shape.reduce(1, *)
        guard count == tensor.shape.reduce(1, *) else {
            throw DemoError("Core ML output \(tensor.name) has shape \(shape), the manifest says \(tensor.shape)")
        }
        let out = tensor.buffer
        if array.dataType == .float32, tensor.dtype == .float32, strides == rowMajorStrides(shape) {
            array.withUnsafeBytes { raw in
                if let source = raw.baseAddress, let target = out.baseAddress { target.copyMemory(from: source, byteCount: 4 * count) }
            }
            return
        }
        var failure: Error?
        let dataType = array.dataType
        array.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            forEachOffset(shape: shape, strides: strides) { i, offset in
                do {
                    let x: Float
                    switch dataType {
                    case .int32: x = Float(base.assumingMemoryBound(to: Int32.self)[offset])
                    case .double: x = Float(base.assumingMemoryBound(to: Double.self)[offset])
                    case .float16: x = try loadHalf(base, offset)
                    default: x = base.assumingMemoryBound(to: Float.self)[offset]
                    }
                    switch tensor.dtype {
                    case .float32: out.storeBytes(of: x, toByteOffset: 4 * i, as: Float.self)
                    case .float16: try storeHalf(out.baseAddress!, i, x)
                    default: throw DemoError("Core ML output \(tensor.name): the core wants \(tensor.dtype.rawValue)")
                    }
                } catch {
                    failure = failure ?? error
                }
            }
        }
        if let failure { throw failure }
    }

    private static func integer(_ b: UnsafeMutableRawBufferPointer, _ dtype: DType, _ i: Int) throws -> Int32 {
        switch dtype {
        case .int64: return Int32(truncatingIfNeeded: b.load(fromByteOffset: 8 * i, as: Int64.self))
        case .int32: return b.load(fromByteOffset: 4 * i, as: Int32.self)
        case .uint8, .bool: return Int32(b[i])
        case .int8: return Int32(Int8(bitPattern: b[i]))
        default: return Int32(try real(b, dtype, i))
        }
    }

    private static func real(_ b: UnsafeMutableRawBufferPointer, _ dtype: DType, _ i: Int) throws -> Float {
        switch dtype {
        case .float32: return b.load(fromByteOffset: 4 * i, as: Float.self)
        case .float16: return try loadHalf(b.baseAddress!, i)
        case .int64: return Float(b.load(fromByteOffset: 8 * i, as: Int64.self))
        case .int32: return Float(b.load(fromByteOffset: 4 * i, as: Int32.self))
        case .uint8, .bool: return Float(b[i])
        case .int8: return Float(Int8(bitPattern: b[i]))
        }
    }

    // Swift's Float16 exists on arm64 only (every iPhone and iPad, and the Simulator on Apple silicon).
    private static func loadHalf(_ base: UnsafeRawPointer, _ index: Int) throws -> Float {
        #if arch(arm64)
            return Float(base.load(fromByteOffset: 2 * index, as: Float16.self))
        #else
            throw DemoError("float16 tensors need an arm64 device or Simulator")
        #endif
    }

    private static func storeHalf(_ base: UnsafeMutableRawPointer, _ index: Int, _ x: Float) throws {
        #if arch(arm64)
            base.storeBytes(of: Float16(x), toByteOffset: 2 * index, as: Float16.self)
        #else
            throw DemoError("float16 tensors need an arm64 device or Simulator")
        #endif
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
