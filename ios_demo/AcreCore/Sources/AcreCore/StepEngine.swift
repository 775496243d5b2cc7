/// What one call of the step program returns (docs/bundle.md "The step signature"), as float32.
public struct StepOutput {
    public var logits: [Float]  // [vocab], of row lastIndex
    public var kNew: [Float]  // [L, Hkv, rows, D], un-rotated
    public var vNew: [Float]  // [L, Hkv, rows, D]
    public var potAttention: [Float]  // [rows, P], summed over the retrieval heads
    public var qProbe: [Float]  // [Lp, H, rows, D], un-rotated queries of the probe layers
    public var rows: Int

    public init(logits: [Float], kNew: [Float], vNew: [Float], potAttention: [Float], qProbe: [Float], rows: Int) {
        self.logits = logits
        self.kNew = kNew
        self.vNew = vNew
        self.potAttention = potAttention
        self.qProbe = qProbe
        self.rows = rows
    }
}

/// Runs the step program of a bundle (the app's Core ML engine; a fake one in the tests). The pot is
/// the runtime's: an engine reads its K/V, positions and mask and writes nothing into it.
public protocol StepEngine: AnyObject {
    /// Rows of the entry point that runs `count` tokens: 1 (decode) for one token when the program
    /// has a decode entry point, else the chunk (prefill), padded.
    func rows(for count: Int) -> Int

    /// One call: `tokens` and `positions` have rows(for:) entries; logits are those of row `lastIndex`.
    func step(tokens: [Int32], positions: [Int32], pot: Pot, lastIndex: Int) throws -> StepOutput
}

/// Text <-> token ids with the bundle's tokenizer, and the chat template split around the user's
/// message (session.py split_chat_template).
public protocol TextTokenizer: AnyObject {
    /// Token ids of `text`, no special tokens added (special-token text in it is still recognised).
    func encode(_ text: String) -> [Int]
    /// Text of `ids`, special tokens left out.
    func decode(_ ids: [Int]) -> String
    var bosTokenId: Int? { get }
    /// The chat template's text before the user's message ("" when there is no template).
    var promptPrefix: String { get }
    /// Its text after the message, up to where the answer starts ("\n" when there is no template).
    var promptSuffix: String { get }
}
