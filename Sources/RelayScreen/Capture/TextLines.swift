/// Source-code-like lines for the synthetic scenes, the same for the same line number
/// and seed: indentation, keywords, names, numbers, strings and comments in the colours a
/// terminal editor gives them.
enum TextLines {
    private static let keywords = ["let", "var", "func", "return", "if", "guard", "else", "for", "in", "while", "switch", "case", "struct", "self"]
    private static let names = [
        "frame", "buffer", "tile", "width", "height", "count", "pixels", "offset", "row", "column",
        "encoder", "update", "session", "viewer", "host", "relay", "stream", "bytes", "index", "region",
    ]
    private static let symbols = ["=", "+", "-", "(", ")", "{", "}", ".", ",", ":", "==", "+=", "->"]
    private static let comments = [
        "// keep the previous frame for change detection", "// tiles are 64 by 64 pixels",
        "// the viewer asked for the next update", "// TODO: coalesce small rectangles",
        "// deflate with one stream per direction", "// send only what changed",
    ]

    static let keywordColour: UInt32 = 0x569CD6
    static let nameColour: UInt32 = 0xD4D4D4
    static let numberColour: UInt32 = 0xB5CEA8
    static let stringColour: UInt32 = 0xCE9178
    static let commentColour: UInt32 = 0x6A9955

    /// Line `number`'s words, each with its colour (spaces included in the words).
    static func line(_ number: Int, seed: UInt64) -> [(String, UInt32)] {
        var random = SplitMix64(seed: seed &+ UInt64(number) &* 0x2545_F491_4F6C_DD1D)
        let kind = random.next() % 10
        if kind == 0 { return [] }
        let indent = String(repeating: " ", count: Int(random.next() % 5) * 4)
        if kind == 1 {
            return [(indent + comments[Int(random.next() % UInt64(comments.count))], commentColour)]
        }
        var words: [(String, UInt32)] = [(indent, nameColour)]
        let count = 2 + Int(random.next() % 10)
        for _ in 0..<count {
            switch random.next() % 8 {
            case 0, 1: words.append((keywords[Int(random.next() % UInt64(keywords.count))] + " ", keywordColour))
            case 2: words.append((String(random.next() % 4096) + " ", numberColour))
            case 3: words.append(("\"" + names[Int(random.next() % UInt64(names.count))] + "\" ", stringColour))
            case 4: words.append((symbols[Int(random.next() % UInt64(symbols.count))] + " ", nameColour))
            default: words.append((names[Int(random.next() % UInt64(names.count))] + " ", nameColour))
            }
        }
        return words
    }
}
