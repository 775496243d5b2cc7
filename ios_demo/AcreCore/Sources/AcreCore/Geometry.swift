import Foundation

/// Model geometry: the numbers that fix every tensor shape in the step program and the caches
/// (acre/geometry.py).
public struct Geometry: Equatable {
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var hidden: Int
    public var intermediate: Int
    public var vocab: Int
    public var ropeTheta: Double
    public var rmsEps: Double
    public var window: Int  // the model's native context window
    public var qkvBias: Bool

    public init(
        layers: Int, heads: Int, kvHeads: Int, headDim: Int, hidden: Int, intermediate: Int, vocab: Int,
        ropeTheta: Double, rmsEps: Double, window: Int, qkvBias: Bool = false
    ) {
        self.layers = layers
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.hidden = hidden
        self.intermediate = intermediate
        self.vocab = vocab
        self.ropeTheta = ropeTheta
        self.rmsEps = rmsEps
        self.window = window
        self.qkvBias = qkvBias
    }

    /// `model.geometry` of a manifest: every field but `qkv_bias` is required.
    public init(json: JSON?) throws {
        guard let json, case .object = json else { throw FieldError("model.geometry") }
        func int(_ key: String) throws -> Int {
            guard let value = json[key]?.pythonInt else { throw FieldError("model.geometry.\(key)") }
            return value
        }
        func real(_ key: String) throws -> Double {
            guard let value = json[key]?.number else { throw FieldError("model.geometry.\(key)") }
            return value
        }
        try self.init(
            layers: int("layers"), heads: int("heads"), kvHeads: int("kv_heads"), headDim: int("head_dim"),
            hidden: int("hidden"), intermediate: int("intermediate"), vocab: int("vocab"),
            ropeTheta: real("rope_theta"), rmsEps: real("rms_eps"), window: int("window"),
            qkvBias: json["qkv_bias"]?.bool ?? false)
    }

    public var json: JSON {
        .object(
            JSONObject([
                ("layers", .int(layers)), ("heads", .int(heads)), ("kv_heads", .int(kvHeads)),
                ("head_dim", .int(headDim)), ("hidden", .int(hidden)), ("intermediate", .int(intermediate)),
                ("vocab", .int(vocab)), ("rope_theta", .double(ropeTheta)), ("rms_eps", .double(rmsEps)),
                ("window", .int(window)), ("qkv_bias", .bool(qkvBias)),
            ]))
    }
}

/// A required manifest field is missing or malformed (becomes a BundleError of kind .field).
struct FieldError: Error {
    let name: String
    init(_ name: String) { self.name = name }
}
