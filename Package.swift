// swift-tools-version: 6.1
import PackageDescription

// Modules and the way they depend (see ARCHITECTURE.md):
//   CairnCore (entry format, crypto, clock) ← CairnStore (SQLite log) ← Cairn (library facade) ← cairn (CLI)
//   CairnSQLite (thin SQLite C API wrapper) ← CairnStore, CairnReconcile
//   CairnReconcile (Negentropy V1 set reconciliation) stands alone: no Cairn types, no networking.
//   CairnNoise (Noise XXpsk3 handshake and transport) stands alone: bytes in, bytes out.
//   CairnSync (the sync node: SwiftNIO sessions over CairnNoise, delta fetch, push, RBSR) ← cairn serve
//   CairnAPI (the local JSON HTTP API on Hummingbird 2, over the Cairn facade only) ← cairn api, cairn serve --api
let package = Package(
    name: "cairn",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Cairn", targets: ["Cairn"]),
        .library(name: "CairnSync", targets: ["CairnSync"]),
        .library(name: "CairnReconcile", targets: ["CairnReconcile"]),
        .library(name: "CairnAPI", targets: ["CairnAPI"]),
        .executable(name: "cairn", targets: ["CairnCLI"]),
        .executable(name: "cairn-bench", targets: ["CairnBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
    ],
    targets: [
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .systemLibrary(name: "CBlake2", pkgConfig: "libb2", providers: [.apt(["libb2-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),

        .target(name: "CairnCore", dependencies: ["CSodium", "CBlake2"]),
        .target(name: "CairnSQLite", dependencies: ["CSQLite"]),
        .target(name: "CairnReconcile", dependencies: ["CairnSQLite", "CSodium"]),
        .target(name: "CairnNoise", dependencies: ["CSodium", "CBlake2"]),
        .target(name: "CairnStore", dependencies: [
            "CairnCore", "CairnSQLite",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "Cairn", dependencies: [
            "CairnCore", "CairnStore", "CairnReconcile",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "CairnSync", dependencies: [
            "Cairn", "CairnCore", "CairnStore", "CairnNoise", "CairnReconcile", "CSodium",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Metrics", package: "swift-metrics"),
        ]),
        .target(name: "CairnAPI", dependencies: [
            "Cairn",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], resources: [.copy("Resources/web")]),  // the web audit view's page, served at /
        .executableTarget(name: "CairnCLI", dependencies: [
            "Cairn", "CairnCore", "CairnStore", "CairnSync", "CairnSQLite", "CairnAPI",
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "CairnBench", dependencies: [
            "Cairn", "CairnCore", "CairnStore", "CairnSync", "CairnReconcile", "CairnTestSupport", "CSodium", "CSQLite", "CairnAPI",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            // The mesh benchmark scrapes each daemon's /metrics.
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // Seeded randomness shared by the tests and the benchmark.
        .target(name: "CairnTestSupport"),

        .testTarget(name: "CairnCoreTests", dependencies: ["CairnTestSupport", "CairnCore"]),
        .testTarget(name: "CairnSQLiteTests", dependencies: ["CairnSQLite"]),
        .testTarget(name: "CairnReconcileTests", dependencies: ["CairnTestSupport", "CairnReconcile", "CairnSQLite"]),
        .testTarget(name: "CairnStoreTests", dependencies: ["CairnTestSupport", "CairnStore", "CairnCore", "CairnSQLite"]),
        .testTarget(name: "CairnNoiseTests", dependencies: ["CairnNoise"]),
        .testTarget(name: "CairnTests", dependencies: ["Cairn", "CairnCore", "CairnStore", "CairnReconcile", "CairnSQLite"]),
        .testTarget(name: "CairnSyncTests", dependencies: [
            "CairnTestSupport", "CairnSync", "Cairn", "CairnCore", "CairnStore", "CairnNoise",
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        .testTarget(name: "CairnCLITests", dependencies: ["Cairn", "CairnCore", "CairnStore", "CairnSQLite"]),
        .testTarget(name: "CairnAPITests", dependencies: [
            "CairnAPI", "Cairn", "CairnTestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], exclude: ["python"]),
    ]
)
