// swift-tools-version:6.1
//
// Benchmarks for SupportRelay, kept in a nested package so that the root package stays
// free of benchmark-only code and the benchmarks always build in release mode with their
// own .build folder:
//
//     swift build -c release --package-path benchmarks
//     benchmarks/.build/release/relay-bench --help
//
// Each benchmark area is one subcommand of `relay-bench` (see Sources/relay-bench).
import PackageDescription

let package = Package(
    name: "relay-bench",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "relay-bench", targets: ["relay-bench"])
    ],
    dependencies: [
        .package(name: "SupportRelay", path: ".."),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        // The same range as the root package: `relay-bench seal` calls AES-GCM directly as the floor.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        .executableTarget(
            name: "relay-bench",
            dependencies: [
                .product(name: "RelayWire", package: "SupportRelay"),
                .product(name: "RelayClient", package: "SupportRelay"),
                .product(name: "RelayScreen", package: "SupportRelay"),
                .product(name: "RelayTileCodec", package: "SupportRelay"),
                .product(name: "RelayStore", package: "SupportRelay"),
                .product(name: "RelaySecureChannel", package: "SupportRelay"),
                .product(name: "Crypto", package: "swift-crypto"),
                "CZlibBaseline",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // zlib for `relay-bench codec`'s baseline encoder (Debian: zlib1g-dev).
        .systemLibrary(name: "CZlibBaseline", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
    ],
    swiftLanguageModes: [.v6]
)
