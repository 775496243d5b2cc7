import Foundation
import PDFKit

/// The text of a picked document: plain text in UTF-8 (or Latin-1), or the text layer of a PDF.
enum DocumentText {
    static func read(_ url: URL) throws -> String {
        let scoped = url.startAccessingSecurityScopedResource()
        defer { if scoped { url.stopAccessingSecurityScopedResource() } }
        if url.pathExtension.lowercased() == "pdf" {
            guard let text = PDFDocument(url: url)?.string, !text.isEmpty else {
                throw DemoError("\(url.lastPathComponent): no text layer in this PDF")
            }
            return text
        }
        let data = try Data(contentsOf: url)
        if let text = String(data: data, encoding: .utf8) { return text }
        if let text = String(data: data, encoding: .isoLatin1) { return text }
        throw DemoError("\(url.lastPathComponent): not a text file")
    }
}

struct DemoError: LocalizedError {
    let message: String
    init(_ message: String) { self.message = message }
    var errorDescription: String? { message }
}
