// libFuzzer entry point for the relay's ClientHello ALPN reader (ClientHelloALPN.swift in
// this folder is a symbolic link to Sources/RelayServer/TLS/ClientHelloALPN.swift: the
// relay's own file, which runs on every byte a stranger sends before TLS). Build and run
// with `FUZZ_TARGET=FuzzClientHelloALPN scripts/fuzz.sh`; see fuzz/README.md.
//
// Per input, the bytes are what a client sent first. Checked:
//  1. `ClientHelloALPN.offer(in:)` equals the offer a second, independent reader finds
//     (`model` below: array indices instead of ByteBuffer reads, written from RFC 8446
//     §4.1.2 / §5.1 and RFC 7301 §3.1 rather than from the relay's code).
//  2. Arriving in pieces changes nothing: every prefix shorter than the first record is
//     `.incomplete` (or `.unreadable` once its header shows it is not a handshake record),
//     and every longer prefix gives the same offer as the whole input. The relay's gate
//     (ALPNGate) judges on the first prefix that is not incomplete, so this is what makes
//     its decision independent of how TCP cut the bytes.
//  3. An offer of protocols names at least one, none of them empty.
// Any difference ends in a crash that libFuzzer reports and saves.

import NIOCore

@_cdecl("LLVMFuzzerTestOneInput")
public func clientHelloALPNFuzzOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = (start.map { Array(UnsafeBufferPointer(start: $0, count: count)) }) ?? []
    let whole = ClientHelloALPN.offer(in: ByteBuffer(bytes: bytes))

    // 1. The independent reader.
    let expected = model(bytes)
    check(whole == expected, "offer \(whole) but the model reads \(expected)", bytes)

    // 2. Prefixes: all short ones, the record's edges, and a spread in between.
    // Where the first record ends (for fewer than 5 bytes, past the input: still incomplete).
    let recordEnd = bytes.count >= 5 ? 5 + (Int(bytes[3]) << 8 | Int(bytes[4])) : bytes.count + 1
    var lengths = Set(0...min(bytes.count, 48))
    for edge in [recordEnd - 1, recordEnd, recordEnd + 1, bytes.count - 1] where edge >= 0 && edge <= bytes.count { lengths.insert(edge) }
    for step in 1..<8 { lengths.insert(bytes.count * step / 8) }
    for length in lengths.sorted() {
        let offer = ClientHelloALPN.offer(in: ByteBuffer(bytes: bytes[..<length]))
        if length < 5 {
            check(offer == .incomplete, "\(length) bytes (less than a record header) give \(offer)", bytes)
        } else if length < recordEnd {
            check(offer == .incomplete || offer == .unreadable, "\(length) bytes of a \(recordEnd)-byte record give \(offer)", bytes)
            if offer == .unreadable { check(whole == .unreadable, "\(length) bytes are unreadable but all \(bytes.count) give \(whole)", bytes) }
        } else {
            check(offer == whole, "the first \(length) bytes give \(offer), all \(bytes.count) give \(whole)", bytes)
        }
    }

    // 3. Offered protocols.
    if case .protocols(let names) = whole {
        check(!names.isEmpty && names.allSatisfy { !$0.isEmpty }, "an offer with no protocol or an empty name: \(names)", bytes)
    }
    return 0
}

/// The offer of `bytes`, read by index from the RFCs: the reference the relay's reader is
/// held to.
func model(_ bytes: [UInt8]) -> ClientHelloALPN.Offer {
    guard bytes.count >= 5 else { return .incomplete }
    // TLSPlaintext: ContentType handshake(22), legacy_record_version 3.x, length ≤ 2^14.
    let recordLength = Int(bytes[3]) * 256 + Int(bytes[4])
    guard bytes[0] == 22, bytes[1] == 3, recordLength <= 16384 else { return .unreadable }
    guard bytes.count >= 5 + recordLength else { return .incomplete }
    let record = Array(bytes[5..<(5 + recordLength)])

    var at = 0
    func take(_ count: Int) -> ArraySlice<UInt8>? {
        guard count >= 0, record.count - at >= count else { return nil }
        defer { at += count }
        return record[at..<(at + count)]
    }
    func number(_ width: Int) -> Int? { take(width).map { $0.reduce(0) { $0 * 256 + Int($1) } } }

    // Handshake: msg_type client_hello(1), a 24-bit length that is exactly the rest.
    guard number(1) == 1, let helloLength = number(3), helloLength == record.count - 4 else { return .unreadable }
    // ClientHello: legacy_version, random, legacy_session_id<0..32>, cipher_suites<2..2^16-2>,
    // legacy_compression_methods<1..2^8-1>, then extensions — which TLS 1.2 may leave out.
    guard take(2) != nil, take(32) != nil, let sessionID = number(1), sessionID <= 32, take(sessionID) != nil,
        let suites = number(2), take(suites) != nil, let methods = number(1), take(methods) != nil
    else { return .unreadable }
    if at == record.count { return .none }
    guard let extensionsLength = number(2), extensionsLength == record.count - at else { return .unreadable }
    var found: [String]?
    while at < record.count {
        guard let type = number(2), let length = number(2), let body = take(length) else { return .unreadable }
        guard type == 16 else { continue }
        // application_layer_protocol_negotiation(16), at most once: ProtocolName
        // protocol_name_list<2..2^16-1>, each ProtocolName<1..2^8-1>.
        guard found == nil else { return .unreadable }
        let list = Array(body)
        guard list.count >= 2, Int(list[0]) * 256 + Int(list[1]) == list.count - 2, list.count > 2 else { return .unreadable }
        var names: [String] = []
        var index = 2
        while index < list.count {
            let nameLength = Int(list[index])
            guard nameLength > 0, index + 1 + nameLength <= list.count else { return .unreadable }
            names.append(String(decoding: list[(index + 1)..<(index + 1 + nameLength)], as: UTF8.self))
            index += 1 + nameLength
        }
        found = names
    }
    return found.map { .protocols($0) } ?? .none
}

/// Crashes with the input in hex when `condition` is false: libFuzzer saves the input.
func check(_ condition: Bool, _ message: @autoclosure () -> String, _ bytes: [UInt8]) {
    guard !condition else { return }
    let hex = bytes.prefix(512).map { byte in String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16) }.joined(
        separator: " ")
    fatalError("ClientHelloALPN: \(message())\ninput (\(bytes.count) bytes, first 512): \(hex)")
}
