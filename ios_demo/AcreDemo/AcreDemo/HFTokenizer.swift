import AcreCore
import Foundation
import Tokenizers

/// The bundle's Hugging Face tokenizer (tokenizer.json, tokenizer_config.json) through
/// swift-transformers' Tokenizers, as AcreCore's TextTokenizer.
final class HFTokenizer: TextTokenizer {
    private let tokenizer: any Tokenizer
    let promptPrefix: String
    let promptSuffix: String

    static func load(_ folder: URL) async throws -> HFTokenizer {
        HFTokenizer(try await AutoTokenizer.from(modelFolder: folder))
    }

    init(_ tokenizer: any Tokenizer) {
        self.tokenizer = tokenizer
        let split = HFTokenizer.splitChatTemplate(tokenizer)
        promptPrefix = split.prefix
        promptSuffix = split.suffix
    }

    var bosTokenId: Int? { tokenizer.bosTokenId }

    func encode(_ text: String) -> [Int] {
        tokenizer.encode(text: text, addSpecialTokens: false)
    }

    func decode(_ ids: [Int]) -> String {
        tokenizer.decode(tokens: ids, skipSpecialTokens: true)
    }

    /// The chat template's text before and after the user's message in its first user turn (as the
    /// Python runtime's split_chat_template): render it around a marker, decode, split at the marker.
    static func splitChatTemplate(_ tokenizer: any Tokenizer) -> (prefix: String, suffix: String) {
        let marker = "ACREDOCUMENTMARKER"
        guard tokenizer.hasChatTemplate,
            let ids = try? tokenizer.applyChatTemplate(
                messages: [["role": "user", "content": marker]], chatTemplate: nil, addGenerationPrompt: true,
                truncation: false, maxLength: nil, tools: nil)
        else { return ("", "\n") }
        let rendered = tokenizer.decode(tokens: ids, skipSpecialTokens: false)
        guard let range = rendered.range(of: marker) else { return ("", "\n") }
        return (String(rendered[..<range.lowerBound]), String(rendered[range.upperBound...]))
    }
}
