import AcreKit
import CryptoKit
import Foundation

/// The app's state and its one flow: open a bundle, ingest a document (L2 in Application Support),
/// ask, stream the answer, show the memory profile. The session runs on one serial queue; the
/// published state changes on the main queue only.
final class DemoModel: ObservableObject {
    @Published var bundles: [URL] = []
    @Published var bundleName = ""
    @Published var status = "Copy a bundle into this app's Documents (Files, Finder) or import its folder."
    @Published var ready = false
    @Published var busy = false
    @Published var documentName = ""
    @Published var documentTokens = 0
    @Published var progress = 0.0
    @Published var ingesting = false
    @Published var answer = ""
    @Published var answering = false
    @Published var profile: Profile?
    @Published var footprint: UInt64 = 0
    @Published var chosenSpans: [Int] = []
    @Published var error: String?

    private let work = DispatchQueue(label: "org.acre.demo.session", qos: .userInitiated)
    private var session: Session?
    private var stopRequested = false

    static var documents: URL { FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0] }

    static var support: URL {
        let url = FileManager.default.urls(for: .applicationSupportDirectory, in: .userDomainMask)[0]
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    // MARK: - bundles

    /// Bundles are directories with a manifest.json, in Documents or Documents/Bundles.
    func findBundles() {
        let fm = FileManager.default
        var found: [URL] = []
        for folder in [DemoModel.documents, DemoModel.documents.appendingPathComponent("Bundles")] {
            let items = (try? fm.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)) ?? []
            for item in items where fm.fileExists(atPath: item.appendingPathComponent("manifest.json").path) {
                found.append(item)
            }
        }
        bundles = found.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// Copy a picked bundle folder into Documents/Bundles, then open it.
    func importBundle(_ picked: URL) {
        busy = true
        work.async {
            let scoped = picked.startAccessingSecurityScopedResource()
            defer { if scoped { picked.stopAccessingSecurityScopedResource() } }
            do {
                let target = DemoModel.documents.appendingPathComponent("Bundles")
                    .appendingPathComponent(picked.lastPathComponent)
                try FileManager.default.createDirectory(
                    at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                try? FileManager.default.removeItem(at: target)
                try FileManager.default.copyItem(at: picked, to: target)
                DispatchQueue.main.async {
                    self.findBundles()
                    self.openBundle(target)
                }
            } catch {
                self.fail(error)
            }
        }
    }

    func openBundle(_ url: URL) {
        busy = true
        ready = false
        bundleName = url.lastPathComponent
        status = "Checking \(url.lastPathComponent) (sha256 of every file)…"
        Task {
            do {
                let bundle = try AcreBundle(url)
                self.onMain { self.status = "Reading the chat template…" }
                let template = try await ChatTemplateSplit.load(bundle.tokenizerDirectory)
                self.onMain { self.status = "Compiling the Core ML program (first time only)…" }
                let program = try await CoreMLEngine.load(
                    bundle: bundle, cache: DemoModel.support.appendingPathComponent("CompiledModels"))
                // the core steps the Core ML program through its callback engine (acre_step_fn)
                let engine = try Engine.callback(bundle, program: program)
                let session = try Session(bundle: bundle, engine: engine, template: template)
                self.work.async {
                    self.session = session
                    let slots = session.profile.potSlots
                    self.onMain {
                        self.ready = true
                        self.busy = false
                        self.status = "Ready: \(bundle.geometry.layers) layers, pot of \(slots) slots."
                        self.refreshProfile()
                    }
                }
            } catch {
                self.fail(error)
            }
        }
    }

    // MARK: - document

    /// Ingest a picked document; its L2 goes to Application Support/L2/<sha256 of the text>, so the same
    /// document picked again later is reopened instead of ingested.
    func ingest(_ picked: URL) {
        guard let session else { return }
        ingesting = true
        progress = 0
        answer = ""
        documentName = picked.lastPathComponent
        work.async {
            do {
                let text = try DocumentText.read(picked)
                let key = SHA256.hash(data: Data(text.utf8)).map { String(format: "%02x", $0) }.joined().prefix(24)
                let store = DemoModel.support.appendingPathComponent("L2").appendingPathComponent(String(key))
                let tokens = try session.ingest(text, store: store) { done, total in
                    let fraction = Double(done) / Double(Swift.max(total, 1))
                    self.onMain { self.progress = fraction }
                    return true
                }
                let reopened = session.reopened
                self.onMain {
                    self.ingesting = false
                    self.documentTokens = tokens
                    self.status = reopened ? "Reopened \(picked.lastPathComponent) from flash: no re-ingest." : "Ingested."
                    self.refreshProfile()
                }
            } catch {
                self.onMain { self.ingesting = false }
                self.fail(error)
            }
        }
    }

    // MARK: - ask

    func ask(_ question: String) {
        guard let session, !question.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { return }
        answering = true
        answer = ""
        stopRequested = false
        work.async {
            do {
                try session.ask(question, decoding: Decoding(maxNewTokens: 256)) { piece in
                    self.onMain { self.answer += piece }
                    return !self.stopRequested
                }
                let spans = session.last.spans
                self.onMain {
                    self.answering = false
                    self.chosenSpans = spans
                    self.refreshProfile()
                }
            } catch {
                self.onMain { self.answering = false }
                self.fail(error)
            }
        }
    }

    func stop() { stopRequested = true }

    // MARK: - profile

    func refreshProfile() {
        work.async {
            let profile = self.session?.profile
            let footprint = DeviceMemory.footprintBytes()
            self.onMain {
                self.profile = profile
                self.footprint = footprint
            }
        }
    }

    private func onMain(_ change: @escaping () -> Void) {
        DispatchQueue.main.async(execute: change)
    }

    private func fail(_ error: Error) {
        let message = (error as? LocalizedError)?.errorDescription ?? "\(error)"
        onMain {
            self.busy = false
            self.error = message
            self.status = message
        }
    }
}
