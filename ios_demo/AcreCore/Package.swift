// swift-tools-version:5.9
// AcreCore: the acre runtime in Swift (bundle, L2 store, pot, layout, span selection, span index,
// session), Foundation only. The app in ../AcreDemo adds Core ML and the tokenizer on top.
import PackageDescription

let package = Package(
    name: "AcreCore",
    platforms: [.iOS(.v17), .macOS(.v14)],
    products: [
        .library(name: "AcreCore", targets: ["AcreCore"]),
    ],
    targets: [
        .target(name: "AcreCore"),
        .testTarget(name: "AcreCoreTests", dependencies: ["AcreCore"]),
    ]
)
