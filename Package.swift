// swift-tools-version:6.2
import PackageDescription

// Every target of this package: Swift 6 with two upcoming features, and warnings are errors
// (STYLE.md; dependencies keep their warnings to themselves).
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "SupportRelay",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "RelayWire", targets: ["RelayWire"]),
        .library(name: "RelayTileCodec", targets: ["RelayTileCodec"]),
        .library(name: "RelayClient", targets: ["RelayClient"]),
        .library(name: "RelayScreen", targets: ["RelayScreen"]),
        .library(name: "RelaySecureChannel", targets: ["RelaySecureChannel"]),
        .library(name: "RelayStore", targets: ["RelayStore"]),
        .executable(name: "relay-server", targets: ["RelayServer"]),
        .executable(name: "relay-agent", targets: ["RelayAgent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation.git", from: "0.9.20"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // The protocol: frames, messages, the relay's scanner, account keys as people write
        // them. No I/O beyond NIOCore's ByteBuffer.
        .target(
            name: "RelayWire",
            dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // The tile-delta screen codec (PROTOCOL.md §7): framebuffer, encoder, decoder, zlib.
        // Only the agents link it; the relay forwards TileUpdate bodies unread.
        .target(
            name: "RelayTileCodec",
            dependencies: ["CSystemZlib", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        // C libraries from the system (zlib as CSystemZlib: ZIPFoundation brings a module named CZlib; Debian: zlib1g-dev, libx11-dev libxext-dev libxtst-dev libxfixes-dev libxdamage-dev, libpng-dev).
        .systemLibrary(name: "CSystemZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(
            name: "CX11", pkgConfig: "x11 xext xtst xfixes xdamage",
            providers: [.apt(["libx11-dev", "libxext-dev", "libxtst-dev", "libxfixes-dev", "libxdamage-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        // The host's screen sources (X11, PNG replay, synthetic scenes), PNG files, and the
        // viewer-paced screen sessions of host and viewer.
        .target(
            name: "RelayScreen",
            dependencies: [
                // Sessions talk to any FrameTransport (RelayWire): no TLS, no client here.
                "RelayWire", "RelayTileCodec", "CX11", "CPNG",
            ],
            swiftSettings: strict
        ),
        // End-to-end encryption between host and viewer (PROTOCOL.md §5.3, docs/SECURITY.md):
        // the handshake, the record layer and a FrameTransport that seals. Agents only.
        .target(
            name: "RelaySecureChannel",
            dependencies: [
                "RelayWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // The agent side of a relay connection: TLS with pinning, handshake, frames.
        .target(
            name: "RelayClient",
            dependencies: [
                "RelayWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: strict
        ),
        // The relay's records: accounts, access log, usage history, audit log, legal holds;
        // retention and export rules. SQLite (GRDB) or PostgreSQL (postgres-nio) behind store protocols.
        .target(
            name: "RelayStore",
            dependencies: [
                "RelayWire",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                // The XLSX container of the admin console's exports (issue 14 item 2).
                .product(name: "ZIPFoundation", package: "ZIPFoundation"),
                // The PostgreSQL store of a cluster (issue 15).
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Web sign-in's rules (issue 13 item 2): password rules and bcrypt, TOTP with replay
        // protection, recovery codes, one-time links, web sessions and CSRF, and the sign-in
        // state machine. Pure values with virtual time; the crypto is hummingbird-auth's.
        .target(
            name: "RelaySignIn",
            dependencies: [
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "HummingbirdOTP", package: "hummingbird-auth"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "RelayServer",
            dependencies: [
                "RelayWire",
                "RelayStore",
                "RelaySignIn",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                // The web port (HTTPS and WebSocket on the relay port): NIO's own HTTP/1 and
                // WebSocket codecs, in the connection's pipeline in front of the connection core.
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
            ],
            // The web app's files, compiled into the binary (PackageResources): the relay serves
            // exactly these, and there is no folder to ship beside the executable.
            resources: [.embedInCode("Web/Static")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "RelayAgent",
            dependencies: [
                "RelayWire",
                "RelayClient",
                "RelayScreen",
                "RelaySecureChannel",
                "RelayTileCodec",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // Fixtures the test targets share (a test target cannot import another): the Xvfb
        // launcher, a test certificate authority, usage records and file modes. Never
        // linked into a product.
        .target(
            name: "RelayTestSupport",
            dependencies: [
                "RelayStore", "RelayWire",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            path: "Tests/RelayTestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "RelayWireTests",
            dependencies: [
                "RelayWire", "RelayTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOTestUtils", package: "swift-nio"),
            ],
            resources: [],
            swiftSettings: strict
        ),
        // The tile codec's tests: round trips, PROTOCOL.md §7.8 vectors, malformed bodies.
        // RelayScreen only for DesktopScene, the generated desktop the scripts draw on.
        .testTarget(
            name: "RelayTileCodecTests",
            dependencies: [
                "RelayTileCodec", "RelayScreen", "RelayTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RelayServerTests",
            dependencies: [
                "RelayServer", "RelayStore", "RelayWire", "RelayClient", "RelayScreen", "RelaySecureChannel", "RelayTileCodec", "RelayTestSupport",
                "RelaySignIn", "CX11",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RelayScreenTests",
            dependencies: [
                "RelayScreen", "RelayTileCodec", "RelayWire", "RelayTestSupport", "CX11",
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RelayAgentTests",
            dependencies: ["RelayAgent", "RelayWire", "RelayScreen"],
            swiftSettings: strict
        ),
        // The end-to-end layer on its own: vectors with fixed keys, a tampering middle in memory.
        .testTarget(
            name: "RelaySecureChannelTests",
            dependencies: [
                "RelaySecureChannel", "RelayWire", "RelayTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // Web sign-in's rules on their own: RFC 6238 vectors, virtual time.
        .testTarget(
            name: "RelaySignInTests",
            dependencies: ["RelaySignIn", "RelayTestSupport"],
            swiftSettings: strict
        ),
        // The store on its own: SQLite in a temporary folder, no relay.
        .testTarget(
            name: "RelayStoreTests",
            dependencies: ["RelayStore", "RelayTestSupport"],
            swiftSettings: strict
        ),
        // The agent end of a connection on its own: pure parts, and a scripted relay over
        // TLS on loopback where a real relay cannot be made to misbehave.
        .testTarget(
            name: "RelayClientTests",
            dependencies: [
                "RelayClient", "RelayWire", "RelayTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
