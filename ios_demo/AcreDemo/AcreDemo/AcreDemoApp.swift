import SwiftUI

@main
struct AcreDemoApp: App {
    var body: some Scene {
        WindowGroup {
            ContentView()
        }
    }
}
