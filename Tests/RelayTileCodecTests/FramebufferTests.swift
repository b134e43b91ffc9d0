import RelayTileCodec
import Testing

@Suite struct FramebufferTests {
    @Test func fillAndPixelAccessUseBGRXOrder() {
        var framebuffer = Framebuffer(width: 3, height: 2, fill: 0x11_22_33)
        #expect(framebuffer.pixels.count == 3 * 2 * 4)
        #expect(Array(framebuffer.pixels[0..<4]) == [0x33, 0x22, 0x11, 0])
        framebuffer.setRGB(0xAA_BB_CC, x: 2, y: 1)
        #expect(framebuffer.rgb(x: 2, y: 1) == 0xAA_BB_CC)
        #expect(Array(framebuffer.pixels[20..<24]) == [0xCC, 0xBB, 0xAA, 0])
        #expect(framebuffer.rgb(x: 0, y: 0) == 0x11_22_33)
    }
}
