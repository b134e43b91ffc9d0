import RelayTileCodec
import Testing

/// A body limit the relay announced is input, not an invariant: the encoder refuses one
/// too small for a raw tile with an error instead of trapping (issue 10, item 3; REVIEW.md D2).
@Suite struct TileEncoderLimitTests {
    @Test("a limit below 32 KiB throws bodyLimitTooSmall; 32 KiB and above encode", arguments: [0, 1024, 16 * 1024, 32 * 1024 - 1])
    func tooSmallALimitThrows(limit: Int) throws {
        let encoder = TileEncoder()
        let frame = Framebuffer(width: 128, height: 96, fill: 0x10_20_30)
        let error = #expect(throws: ScreenCodecError.self) {
            try encoder.encodeParts(frame, requestID: 1, fullRefresh: true, maximumBodyLength: limit)
        }
        #expect(error?.kind == .bodyLimitTooSmall)
        #expect(error?.message.contains("\(limit) bytes") == true)
        // The encoder is still usable with a valid limit afterwards.
        #expect(try !encoder.encodeParts(frame, requestID: 2, fullRefresh: true, maximumBodyLength: 32 * 1024).isEmpty)
    }
}
