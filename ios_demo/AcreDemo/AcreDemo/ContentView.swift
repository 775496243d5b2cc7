import AcreKit
import SwiftUI
import UniformTypeIdentifiers

struct ContentView: View {
    @StateObject private var model = DemoModel()
    @State private var question = ""
    @State private var showImporter = false
    @State private var importKind = ImportKind.document

    enum ImportKind {
        case bundle
        case document

        var types: [UTType] {
            switch self {
            case .bundle: return [.folder]
            case .document: return [.plainText, .utf8PlainText, .text, .pdf]
            }
        }
    }

    var body: some View {
        NavigationStack {
            Form {
                bundleSection
                documentSection
                questionSection
                memorySection
            }
            .navigationTitle("acre")
            .onAppear { model.findBundles() }
            .fileImporter(isPresented: $showImporter, allowedContentTypes: importKind.types) { result in
                switch result {
                case .success(let url):
                    if importKind == .bundle { model.importBundle(url) } else { model.ingest(url) }
                case .failure(let error):
                    model.error = error.localizedDescription
                }
            }
            .alert(
                "acre", isPresented: Binding(get: { model.error != nil }, set: { if !$0 { model.error = nil } })
            ) {
                Button("OK", role: .cancel) { model.error = nil }
            } message: {
                Text(model.error ?? "")
            }
        }
    }

    private var bundleSection: some View {
        Section("Bundle") {
            if model.bundles.isEmpty {
                Text("No bundle in Documents yet.").foregroundStyle(.secondary)
            }
            ForEach(model.bundles, id: \.self) { url in
                Button {
                    model.openBundle(url)
                } label: {
                    HStack {
                        Text(url.lastPathComponent)
                        Spacer()
                        if model.bundleName == url.lastPathComponent && model.ready {
                            Image(systemName: "checkmark")
                        }
                    }
                }
                .disabled(model.busy || model.ingesting || model.answering)
            }
            Button("Import bundle folder…") {
                importKind = .bundle
                showImporter = true
            }
                .disabled(model.busy || model.ingesting || model.answering)
            Text(model.status).font(.footnote).foregroundStyle(.secondary)
        }
    }

    private var documentSection: some View {
        Section("Document") {
            Button("Choose document…") {
                importKind = .document
                showImporter = true
            }
                .disabled(!model.ready || model.ingesting || model.answering)
            if !model.documentName.isEmpty {
                Text(model.documentName)
            }
            if model.ingesting {
                ProgressView(value: model.progress) {
                    Text("Ingesting: \(Int(model.progress * 100))%")
                }
            } else if model.documentTokens > 0 {
                Text("\(model.documentTokens) tokens").foregroundStyle(.secondary)
            }
        }
    }

    private var questionSection: some View {
        Section("Question") {
            TextField("Ask about the document", text: $question, axis: .vertical)
                .disabled(model.documentTokens == 0 || model.answering)
            HStack {
                Button("Ask") { model.ask(question) }
                    .disabled(model.documentTokens == 0 || model.answering || model.ingesting)
                if model.answering {
                    Spacer()
                    Button("Stop", role: .destructive) { model.stop() }
                }
            }
            if !model.answer.isEmpty || model.answering {
                Text(model.answer.isEmpty ? "…" : model.answer)
                    .textSelection(.enabled)
            }
            if !model.chosenSpans.isEmpty {
                Text("Refilled spans: \(model.chosenSpans.map(String.init).joined(separator: ", "))")
                    .font(.footnote).foregroundStyle(.secondary)
            }
        }
    }

    private var memorySection: some View {
        Section("Memory") {
            if let profile = model.profile {
                row("Pot (RAM, fixed)", "\(bytes(profile.potBytes)) · \(profile.potSlots) slots")
                row("Span index (RAM)", bytes(profile.indexBytes))
                row("L2 on flash", "\(bytes(profile.l2DiskBytes)) · \(profile.spans) spans")
                row("Read for the last question", bytes(profile.lastQuestionBytesRead))
                row("Document", "\(profile.documentTokens) tokens")
            }
            row("App footprint", bytes(Int(model.footprint)))
            Button("Refresh") { model.refreshProfile() }
        }
    }

    private func row(_ title: String, _ value: String) -> some View {
        HStack {
            Text(title)
            Spacer()
            Text(value).foregroundStyle(.secondary).monospacedDigit()
        }
    }

    private func bytes(_ count: Int) -> String {
        ByteCountFormatter.string(fromByteCount: Int64(count), countStyle: .memory)
    }
}
