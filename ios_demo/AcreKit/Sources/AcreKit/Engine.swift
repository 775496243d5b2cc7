import CAcre
import Foundation

/// The dtypes of step inputs and outputs (`acre_dtype`).
public enum DType: String {
    case float32, float16, int64, int32, uint8, bool, int8

    init?(_ dtype: acre_dtype) {
        self.init(rawValue: String(cString: acre_dtype_name(dtype)))
    }
}

/// One input or output of a step as the core hands it to a StepProgram: the manifest's name, its dtype
/// and shape, over the core's memory during the call only. Inputs are read (never written; the pot's
/// inputs are the pot's own memory, at the same addresses on every call), every byte of an output is
/// to be written.
public struct StepTensor {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let buffer: UnsafeMutableRawBufferPointer
}

/// A host's own step engine (Core ML in the demo): one pass of `rows` tokens (the prefill chunk, or 1
/// for decode) of the bundle's step signature. Inputs and outputs come in manifest order
/// (`step.inputs`, `step.outputs`). An error thrown here fails the core's call (an ingest keeps its last
/// checkpoint) and is thrown again, as it was, by the Session call that made the step.
public protocol StepProgram: AnyObject {
    func step(rows: Int, inputs: [StepTensor], outputs: [StepTensor]) throws
}

/// A step engine of the core (`acre_engine`): the bundle's model.pte through ExecuTorch, or a
/// StepProgram through the core's callback engine (`acre_step_fn`).
public final class Engine {
    let handle: OpaquePointer
    let bundle: AcreBundle  // the engine's shapes are the bundle's
    private let callback: CallbackBox?

    private init(handle: OpaquePointer, bundle: AcreBundle, callback: CallbackBox?) {
        self.handle = handle
        self.bundle = bundle
        self.callback = callback
    }

    deinit { acre_engine_free(handle) }

    /// model.pte through ExecuTorch's C++ runtime. This package builds the core without ExecuTorch, so
    /// here it throws an AcreError of kind "unsupported" (README: "ExecuTorch").
    public static func executorch(_ bundle: AcreBundle) throws -> Engine {
        var out: OpaquePointer?
        try check(acre_engine_open_executorch(bundle.handle, &out))
        return Engine(handle: out!, bundle: bundle, callback: nil)
    }

    /// An engine that runs `program` for every step (the core keeps it until the engine is freed).
    public static func callback(_ bundle: AcreBundle, program: StepProgram) throws -> Engine {
        let box = CallbackBox(program)
        var out: OpaquePointer?
        // the core releases the box's retain with free_user: when the engine is freed, or at once if this fails
        try check(acre_engine_open_callback(bundle.handle, stepTrampoline, Unmanaged.passRetained(box).toOpaque(),
                                            releaseTrampoline, &out))
        box.engine = out
        return Engine(handle: out!, bundle: bundle, callback: box)
    }

    /// "executorch" or "callback".
    public var name: String { String(cString: acre_engine_name(handle)) }
    /// Activation memory the program plans (ExecuTorch's memory plan; 0 for a callback engine).
    public var plannedBytes: Int { acre_engine_planned_bytes(handle) }

    /// The error a StepProgram threw in the last failed step, taken (nil if the failure was the core's).
    func takeCallbackError() -> Error? {
        defer { callback?.error = nil }
        return callback?.error
    }
}

/// What a callback engine's user pointer holds: the program, the engine (for the tensors' names and
/// shapes, read once per row count) and the error of a failed step.
private final class CallbackBox {
    let program: StepProgram
    var engine: OpaquePointer?
    var error: Error?
    private var specs: [Int32: (inputs: [Spec], outputs: [Spec])] = [:]

    struct Spec {
        let name: String
        let dtype: DType
        let shape: [Int]
        let bytes: Int
    }

    init(_ program: StepProgram) { self.program = program }

    func specs(rows: Int32) throws -> (inputs: [Spec], outputs: [Spec]) {
        if let known = specs[rows] { return known }
        guard let engine else { throw AcreError.input("the step callback ran before its engine was made") }
        func read(_ count: Int, _ info: (Int, UnsafeMutablePointer<acre_tensor_info>) -> acre_status) throws -> [Spec] {
            try (0..<count).map { index in
                var t = acre_tensor_info()
                try check(info(index, &t))
                let dims = withUnsafeBytes(of: t.dims) { Array($0.bindMemory(to: Int64.self).prefix(Int(t.rank))) }
                guard let dtype = DType(t.dtype) else { throw AcreError.input("step tensor \(index): no dtype") }
                return Spec(name: String(cString: t.name), dtype: dtype, shape: dims.map { Int($0) }, bytes: t.bytes)
            }
        }
        let known = (
            inputs: try read(acre_engine_num_inputs(engine)) { acre_engine_input_info(engine, rows, $0, $1) },
            outputs: try read(acre_engine_num_outputs(engine)) { acre_engine_output_info(engine, rows, $0, $1) }
        )
        specs[rows] = known
        return known
    }
}

private func tensors(_ specs: [CallbackBox.Spec], _ buffers: UnsafePointer<acre_buffer>?, _ count: Int) throws
    -> [StepTensor]
{
    guard specs.count == count, count == 0 || buffers != nil else {
        throw AcreError.input("the core passed \(count) step buffers, the manifest lists \(specs.count)")
    }
    return (0..<count).map { i in
        let b = buffers![i]
        return StepTensor(
            name: specs[i].name, dtype: specs[i].dtype, shape: specs[i].shape,
            buffer: UnsafeMutableRawBufferPointer(start: b.bytes > 0 ? b.data : nil, count: b.bytes))
    }
}

private let stepTrampoline: acre_step_fn = { user, rows, inputs, nInputs, outputs, nOutputs, error, capacity in
    guard let user else { return 1 }
    let box = Unmanaged<CallbackBox>.fromOpaque(user).takeUnretainedValue()
    do {
        let specs = try box.specs(rows: rows)
        try box.program.step(
            rows: Int(rows), inputs: try tensors(specs.inputs, inputs, nInputs),
            outputs: try tensors(specs.outputs, outputs, nOutputs))
        return 0
    } catch let thrown {
        box.error = thrown
        if let error, capacity > 0 {
            let message = Array(((thrown as? LocalizedError)?.errorDescription ?? "\(thrown)").utf8.prefix(capacity - 1))
            for (i, byte) in message.enumerated() { error[i] = CChar(bitPattern: byte) }
            error[message.count] = 0
        }
        return 1
    }
}

private let releaseTrampoline: @convention(c) (UnsafeMutableRawPointer?) -> Void = { user in
    if let user { Unmanaged<CallbackBox>.fromOpaque(user).release() }
}
