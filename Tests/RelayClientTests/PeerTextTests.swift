import RelayClient
import Testing

/// Peer and relay text printed on the customer's terminal cannot drive the terminal
/// (issue 10, item 13; PROTOCOL.md §5.2.7).
@Suite struct PeerTextTests {
    @Test("plain text, Korean and emoji pass unchanged")
    func plainTextIsKept() {
        for text in ["kim.minji", "ACME 코리아", "회계팀 PC-03", "👩‍💻 Zoë", ""] {
            #expect(PeerText.printable(text) == text)
        }
    }

    @Test("escape sequences disappear whole: CSI, OSC (both terminators), charset, reset, 8-bit CSI and OSC")
    func escapeSequencesAreRemoved() {
        let cases: [(String, String)] = [
            ("\u{1B}[31mred\u{1B}[0m", "red"),
            ("a\u{1B}[2J\u{1B}[Hb", "ab"),  // clear screen, cursor home
            ("\u{1B}[1A\u{1B}[2KEngineer admin of Your IT", "Engineer admin of Your IT"),  // overwrite the line above
            ("\u{1B}]0;pwned\u{07}title", "title"),
            ("\u{1B}]8;;https://evil.example\u{1B}\\link\u{1B}]8;;\u{1B}\\", "link"),
            ("\u{1B}(0x\u{1B}(B", "x"),
            ("\u{1B}cafter reset", "after reset"),
            ("\u{9B}31mred", "red"),
            ("\u{9D}0;title\u{9C}rest", "rest"),
            ("\u{1B}Pdevice control\u{1B}\\ok", "ok"),
            ("unterminated \u{1B}]0;title", "unterminated "),
            ("trailing escape \u{1B}", "trailing escape "),
        ]
        for (input, expected) in cases {
            #expect(PeerText.printable(input) == expected, "\(input.debugDescription)")
        }
    }

    @Test("C0 and C1 controls and DEL are removed; tabs and line breaks become spaces")
    func controlsAreRemoved() {
        #expect(PeerText.printable("a\u{0}b\u{7}c\u{8}d\u{7F}e\u{85}f\u{9C}g") == "abcde fg")
        #expect(PeerText.printable("line one\nEngineer x of y (verified by the relay)\r\ttab") == "line one Engineer x of y (verified by the relay)  tab")
        #expect(PeerText.printable("a\u{2028}b") == "a b")
        let all = (0..<0x20).map { Character(Unicode.Scalar($0)!) } + (0x7F...0x9F).map { Character(Unicode.Scalar($0)!) }
        let cleaned = PeerText.printable(String(all))
        #expect(cleaned.unicodeScalars.allSatisfy { $0 == " " }, "\(cleaned.debugDescription)")
    }

    @Test("bidi embeddings, overrides, isolates and marks are removed")
    func bidiControlsAreRemoved() {
        // "admin" spelled backwards behind a right-to-left override reads as "admin".
        #expect(PeerText.printable("\u{202E}nimda\u{202C}") == "nimda")
        for scalar in [0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069, 0x200E, 0x200F, 0x061C] {
            #expect(PeerText.printable("a\(Unicode.Scalar(scalar)!)b") == "ab", "U+\(String(scalar, radix: 16))")
        }
    }

    @Test("a limit cuts long text and ends it in …")
    func limit() {
        #expect(PeerText.printable(String(repeating: "가", count: 100), limit: 10) == String(repeating: "가", count: 9) + "…")
        #expect(PeerText.printable("short", limit: 10) == "short")
    }
}
