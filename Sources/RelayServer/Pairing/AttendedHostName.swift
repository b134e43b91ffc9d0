/// The name an engineer sees for an attended host (Paired.peerName, the usage history's
/// host name). The machine name comes from the customer's agent and is not verified, so
/// the relay keeps it short and printable and always adds the address it saw:
/// `DESKTOP-7Q2 (customer PC at 203.0.113.5)`, or `customer PC at 203.0.113.5` without one.
enum AttendedHostName {
    /// Longest machine name kept, in characters; a longer one is cut and ends in "…".
    static let maximumLength = 64

    static func display(machineName: String?, address: String) -> String {
        let fallback = "customer PC at \(address)"
        guard let machineName, let cleaned = self.clean(machineName) else { return fallback }
        return "\(cleaned) (\(fallback))"
    }

    /// Control and format characters (bidirectional overrides among them) dropped, runs of white space as one space, trimmed,
    /// at most ``maximumLength`` characters; nil when nothing printable is left.
    static func clean(_ name: String) -> String? {
        var result = ""
        var pendingSpace = false
        for scalar in name.unicodeScalars {
            if scalar.properties.isWhitespace {
                pendingSpace = !result.isEmpty
                continue
            }
            switch scalar.properties.generalCategory {
            case .format where scalar == "\u{200D}":
                break  // the zero-width joiner holds emoji sequences together: 👩‍💻
            case .control, .format, .lineSeparator, .paragraphSeparator, .privateUse, .surrogate, .unassigned:
                continue
            default:
                break
            }
            if pendingSpace {
                result.unicodeScalars.append(" ")
                pendingSpace = false
            }
            result.unicodeScalars.append(scalar)
        }
        guard !result.isEmpty else { return nil }
        if result.count > self.maximumLength {
            result = String(result.prefix(self.maximumLength - 1)) + "…"
        }
        return result
    }
}
