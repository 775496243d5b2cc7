import AcreKit
import Foundation
import Tokenizers

/// The chat template's text before and after the user's message in its first user turn, rendered with
/// swift-transformers (its Jinja) around a marker, as acre/runtime/session.py's split_chat_template.
/// The core does not render templates; everything else about tokens (the prompt's ids, offsets, the
/// answer's text) is the core's tokenizer, through AcreKit. Names are qualified: both modules have a
/// `Tokenizer`.
enum ChatTemplateSplit {
    static func load(_ tokenizerFolder: URL) async throws -> AcreKit.ChatTemplate {
        split(try await AutoTokenizer.from(modelFolder: tokenizerFolder))
    }

    static func split(_ tokenizer: any Tokenizers.Tokenizer) -> AcreKit.ChatTemplate {
        let marker = "ACREDOCUMENTMARKER"
        guard tokenizer.hasChatTemplate,
            let ids = try? tokenizer.applyChatTemplate(
                messages: [["role": "user", "content": marker]], chatTemplate: nil, addGenerationPrompt: true,
                truncation: false, maxLength: nil, tools: nil)
        else { return .plain }
        let rendered = tokenizer.decode(tokens: ids, skipSpecialTokens: false)
        guard let range = rendered.range(of: marker) else { return .plain }
        return AcreKit.ChatTemplate(prefix: String(rendered[..<range.lowerBound]), suffix: String(rendered[range.upperBound...]))
    }
}
