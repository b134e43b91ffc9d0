/// Text from the other side of a session or from the relay, made safe to print on a
/// terminal (PROTOCOL.md §5.2.7).
///
/// Names in Paired, Bye and Error texts and clipboard text are chosen by someone else:
/// printed as they are, an escape sequence could recolour or clear the customer's
/// terminal, rewrite its title, or move the cursor to overwrite what the agent printed
/// (say, the name of the engineer who is connecting), and a bidi override could make a
/// name read differently from what it is.
public enum PeerText {
    /// `text` on one line, without terminal escape sequences (CSI, OSC and the other ESC
    /// forms, in their 7-bit and 8-bit spellings), C0 and C1 control characters, DEL, and
    /// the Unicode bidi embeddings, overrides, isolates and marks. Tabs and line breaks
    /// become one space each, so that a peer cannot start a line of its own. When
    /// `limit` is given, at most that many characters are kept, the last being `…`.
    public static func printable(_ text: String, limit: Int? = nil) -> String {
        var output = String.UnicodeScalarView()
        var scalars = text.unicodeScalars.makeIterator()
        var pending = scalars.next()
        while let scalar = pending {
            pending = scalars.next()
            switch scalar.value {
            case 0x1B:  // ESC: skip the sequence it starts
                guard let next = pending else { break }
                switch next.value {
                case 0x5B:  // ESC [ : CSI
                    pending = Self.skipControlSequence(&scalars)
                case 0x5D, 0x50, 0x58, 0x5E, 0x5F:  // ESC ] OSC, ESC P DCS, ESC X SOS, ESC ^ PM, ESC _ APC
                    pending = Self.skipControlString(&scalars)
                case 0x20...0x2F:  // ESC, intermediates, final (character set selection and the like)
                    pending = scalars.next()
                    while let current = pending, (0x20...0x2F).contains(current.value) { pending = scalars.next() }
                    if let final = pending, (0x30...0x7E).contains(final.value) { pending = scalars.next() }
                case 0x30...0x7E:  // ESC and one final character (ESC c resets the terminal)
                    pending = scalars.next()
                default:
                    break
                }
            case 0x9B:  // 8-bit CSI
                pending = Self.skipControlSequence(&scalars, first: pending)
            case 0x9D, 0x90, 0x98, 0x9E, 0x9F:  // 8-bit OSC, DCS, SOS, PM, APC
                pending = Self.skipControlString(&scalars, first: pending)
            case 0x09, 0x0A, 0x0D, 0x0B, 0x0C, 0x85, 0x2028, 0x2029:  // tabs and line breaks
                output.append(" ")
            case 0x00...0x1F, 0x7F...0x9F:  // other C0 and C1 controls, DEL
                break
            case 0x202A...0x202E, 0x2066...0x2069, 0x200E, 0x200F, 0x061C:  // bidi controls
                break
            default:
                output.append(scalar)
            }
        }
        let printable = String(output)
        guard let limit, limit > 0, printable.count > limit else { return printable }
        return String(printable.prefix(limit - 1)) + "…"
    }

    /// Skips a control sequence's parameter and intermediate bytes and its final byte
    /// (ECMA-48 §5.4); returns the scalar after it. `first` is the scalar after the
    /// introducer when the caller already took it from the iterator.
    private static func skipControlSequence(
        _ scalars: inout String.UnicodeScalarView.Iterator,
        first: Unicode.Scalar?? = .none
    ) -> Unicode.Scalar? {
        var current = first ?? scalars.next()
        while let scalar = current, (0x20...0x3F).contains(scalar.value) { current = scalars.next() }
        if let final = current, (0x40...0x7E).contains(final.value) { return scalars.next() }
        return current
    }

    /// Skips a control string (OSC, DCS, …) up to and including its terminator: BEL,
    /// ST (`ESC \` or 0x9C); an unterminated string runs to the end of the text.
    private static func skipControlString(
        _ scalars: inout String.UnicodeScalarView.Iterator,
        first: Unicode.Scalar?? = .none
    ) -> Unicode.Scalar? {
        var current = first ?? scalars.next()
        while let scalar = current {
            switch scalar.value {
            case 0x07, 0x9C:
                return scalars.next()
            case 0x1B:
                let next = scalars.next()
                if next?.value == 0x5C { return scalars.next() }
                current = next
            default:
                current = scalars.next()
            }
        }
        return nil
    }
}
