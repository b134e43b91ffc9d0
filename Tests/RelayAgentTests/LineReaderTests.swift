import Foundation
import Synchronization
import Testing

@testable import RelayAgent

/// The customer's answers and the engineer's security code are read with `LineReader`
/// (ConsentPrompt.swift): lines that arrive together are all taken, a line may arrive in
/// pieces, and the end of the input ends the waiting. Over a real pipe.
@Suite struct LineReaderTests {
    /// A pipe whose read end the reader owns; `write` and `close` act on the other end.
    final class Pipe: Sendable {
        let reader: LineReader
        private let readEnd: Int32
        private let writeEnd: Mutex<Int32>

        init() throws {
            var ends: [Int32] = [0, 0]
            guard pipe(&ends) == 0 else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
            self.readEnd = ends[0]
            self.writeEnd = Mutex(ends[1])
            self.reader = LineReader(descriptor: ends[0])
        }

        func write(_ text: String) {
            self.write(Array(text.utf8))
        }

        func write(_ bytes: [UInt8]) {
            let written = self.writeEnd.withLock { end in bytes.withUnsafeBytes { Foundation.write(end, $0.baseAddress, $0.count) } }
            #expect(written == bytes.count)
        }

        func closeWriteEnd() {
            self.writeEnd.withLock { end in
                close(end)
                end = -1
            }
        }

        deinit {
            close(self.readEnd)
            self.writeEnd.withLock { end in
                if end >= 0 { close(end) }
            }
        }
    }

    @Test("lines that arrive in one read are each taken, the second without waiting for more input")
    func linesTogether() async throws {
        let pipe = try Pipe()
        pipe.write("x\na\r\nview only\n")
        // Were the reader to poll the descriptor before its own buffer, the second and
        // third lines would wait for input that never comes and time out.
        #expect(await pipe.reader.readLine(within: .seconds(30)) == .text("x"))
        #expect(await pipe.reader.readLine(within: .seconds(30)) == .text("a"))
        #expect(await pipe.reader.readLine(within: .seconds(30)) == .text("view only"))
    }

    @Test("a line written in pieces is one line; no line within the time is a time-out")
    func linesInPieces() async throws {
        let pipe = try Pipe()
        pipe.write("12")
        #expect(await pipe.reader.readLine(within: .milliseconds(150)) == .timedOut)
        pipe.write("3 4")
        pipe.write("56\nnext")
        #expect(await pipe.reader.readLine(within: .seconds(30)) == .text("123 456"))
        #expect(await pipe.reader.readLine(within: .milliseconds(150)) == .timedOut)
        pipe.write("\n")
        #expect(await pipe.reader.readLine(within: .seconds(30)) == .text("next"))
    }

    @Test("the end of the input gives the last line without a newline, then the end")
    func endOfInput() async throws {
        let pipe = try Pipe()
        pipe.write("r\nlast")
        pipe.closeWriteEnd()
        #expect(await pipe.reader.readLine(within: .seconds(30)) == .text("r"))
        #expect(await pipe.reader.readLine(within: .seconds(30)) == .text("last"))
        #expect(await pipe.reader.readLine(within: .seconds(30)) == .endOfInput)
        #expect(await pipe.reader.readLine(within: .seconds(30)) == .endOfInput)
    }

    @Test("a line longer than the limit is cut to it once, and the next line is whole")
    func overlongLine() async throws {
        let pipe = try Pipe()
        let long = String(repeating: "y", count: 3 * LineReader.maximumLineBytes + 17)
        let writer = Task.detached { pipe.write(long + "\na\n") }
        #expect(await pipe.reader.readLine(within: .seconds(30)) == .text(String(repeating: "y", count: LineReader.maximumLineBytes)))
        #expect(await pipe.reader.readLine(within: .seconds(30)) == .text("a"))
        await writer.value
        #expect(await pipe.reader.readLine(within: .milliseconds(150)) == .timedOut)
    }

    @Test("a cancelled wait ends long before its time limit, and takes no line")
    func cancelled() async throws {
        let pipe = try Pipe()
        let waiting = Task { await pipe.reader.readLine(within: .seconds(600)) }
        try await Task.sleep(for: .milliseconds(50))
        waiting.cancel()
        // A reader that ignored the cancellation would hold this test for 10 minutes.
        #expect(await waiting.value == .timedOut)
        pipe.write("a\n")
        #expect(await pipe.reader.readLine(within: .seconds(30)) == .text("a"))
    }

    @Test("text that is not UTF-8 is read with replacement characters, not dropped")
    func invalidUTF8() async throws {
        let pipe = try Pipe()
        pipe.write("caf")
        pipe.write([0xE9, 0x0A])  // é in Latin-1, then the newline
        #expect(await pipe.reader.readLine(within: .seconds(30)) == .text("caf\u{FFFD}"))
    }
}
