// swift-tools-version:5.4
// A separate package so that the libFuzzer build (-sanitize=fuzzer,address) never touches
// the root package's .build. Tools version 5.4 on purpose: with a 5.9+ manifest,
// `swift build -Xswiftc -sanitize=fuzzer` fails to link executables
// (`undefined symbol '<Target>_main'`, see /work/shared/NOTES.md), while a 5.4 manifest
// with `@_cdecl("LLVMFuzzerTestOneInput")` and `-parse-as-library` links (as swift-nio's
// own fuzz packages do). Build with scripts/fuzz.sh.
import PackageDescription

let package = Package(
    name: "SupportRelayFuzz",
    dependencies: [
        // The real RelayWire and RelayTileCodec sources, through the root package (no copies).
        .package(name: "SupportRelay", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // The decoder: readFrame, RelayMessage, canonical re-encoding, FrameDecoder.
        .executableTarget(
            name: "FuzzRelayWire",
            dependencies: [
                .product(name: "RelayWire", package: "SupportRelay"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // The tile-delta decoder (PROTOCOL.md §7), and encoder round trips of what it made.
        .executableTarget(
            name: "FuzzTileDecoder",
            dependencies: [
                .product(name: "RelayTileCodec", package: "SupportRelay"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // The relay's reader of a TLS ClientHello's ALPN offer (the first bytes a stranger
        // sends), against an independent reader; its source is a symbolic link to the
        // relay's file, as RelayServer is an executable target that cannot be imported.
        .executableTarget(
            name: "FuzzClientHelloALPN",
            dependencies: [
                .product(name: "RelayWire", package: "SupportRelay"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // The relay's forwarding scanner, differentially against readFrame.
        .executableTarget(
            name: "FuzzFrameScanner",
            dependencies: [
                .product(name: "RelayWire", package: "SupportRelay"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
    ]
)
