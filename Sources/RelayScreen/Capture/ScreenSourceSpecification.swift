import RelayWire

/// Where `relay-agent host --source` takes the screen from, parsed from its argument
/// without touching anything; `open(fps:loop:)` then opens it.
///
/// - `x11` — the X display in `$DISPLAY`; `x11:DISPLAY` — that display (`x11::1`,
///   `x11:otherhost:0`).
/// - `replay:DIR` — the PNG frames in DIR, in name order.
/// - `synthetic:NAME` or `synthetic:NAME:WIDTHxHEIGHT` — a generated scene (1280×720 unless
///   a size is given).
/// - `help` — the list above, for `--source help`.
public enum ScreenSourceSpecification: Sendable, Hashable, CustomStringConvertible {
    /// An X display; `nil` means the one in `$DISPLAY`.
    case x11(display: String?)
    /// A folder of same-size PNG frames.
    case replay(folder: String)
    /// A generated scene of the given size.
    case synthetic(SyntheticScene.Kind, width: Int, height: Int)
    /// The user asked for the list of sources.
    case help

    /// The size of a synthetic scene when none is given.
    public static let defaultSyntheticSize = (width: 1280, height: 720)

    /// One line per kind of source, for `--source help` and for errors.
    public static var helpText: String {
        var lines = [
            "Screen sources (--source):",
            "  x11                    the X display in $DISPLAY (MIT-SHM capture, XTest input)",
            "  x11:DISPLAY            that X display, e.g. x11::1 or x11:otherhost:0",
            "  replay:DIR             the PNG frames in DIR, played in name order at --fps, then the last one held (--loop repeats)",
            "  synthetic:NAME[:WxH]   a generated scene, 1280x720 unless a size is given; NAME is one of:",
        ]
        for kind in SyntheticScene.Kind.allCases {
            lines.append("    \(kind.rawValue.padding(toLength: 20)) \(kind.summary)")
        }
        lines.append("  help                   this list")
        return lines.joined(separator: "\n")
    }

    /// Parses a `--source` argument.
    public init(parsing argument: String) throws(ScreenSourceError) {
        let kind: Substring
        let rest: Substring?
        if let colon = argument.firstIndex(of: ":") {
            kind = argument[..<colon]
            rest = argument[argument.index(after: colon)...]
        } else {
            kind = argument[...]
            rest = nil
        }
        switch kind {
        case "x11":
            guard let display = rest else {
                self = .x11(display: nil)
                return
            }
            guard !display.isEmpty else {
                throw ScreenSourceError(
                    .invalidSpecification,
                    "`\(argument)` names no display; write x11 for $DISPLAY or x11:DISPLAY, e.g. x11::0")
            }
            self = .x11(display: String(display))
        case "replay":
            guard let folder = rest, !folder.isEmpty else {
                throw ScreenSourceError(
                    .invalidSpecification,
                    "`\(argument)` names no folder; write replay:DIR with a folder of PNG frames")
            }
            self = .replay(folder: String(folder))
        case "synthetic":
            self = try Self.parseSynthetic(rest, argument: argument)
        case "help" where rest == nil:
            self = .help
        default:
            throw ScreenSourceError(
                .invalidSpecification,
                "unknown screen source `\(argument)`.\n\(Self.helpText)")
        }
    }

    private static func parseSynthetic(_ rest: Substring?, argument: String) throws(ScreenSourceError) -> Self {
        let names = SyntheticScene.Kind.allCases.map(\.rawValue).joined(separator: ", ")
        guard let rest, !rest.isEmpty else {
            throw ScreenSourceError(
                .invalidSpecification,
                "`\(argument)` names no scene; write synthetic:NAME with NAME one of \(names)")
        }
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
        guard let kind = SyntheticScene.Kind(rawValue: String(parts[0])) else {
            throw ScreenSourceError(
                .invalidSpecification,
                "unknown synthetic scene `\(parts[0])`; the scenes are \(names)")
        }
        var size = Self.defaultSyntheticSize
        if parts.count == 2 {
            let dimensions = parts[1].split(separator: "x", omittingEmptySubsequences: false)
            let limit = Int(ScreenInit.maximumDimension)
            guard dimensions.count == 2, let width = Int(dimensions[0]), let height = Int(dimensions[1]),
                (SyntheticScene.minimumSize.width...limit).contains(width),
                (SyntheticScene.minimumSize.height...limit).contains(height)
            else {
                throw ScreenSourceError(
                    .invalidSpecification,
                    "`\(parts[1])` is not a scene size; write WIDTHxHEIGHT, e.g. synthetic:\(kind.rawValue):640x360, at least \(SyntheticScene.minimumSize.width)x\(SyntheticScene.minimumSize.height) and at most \(limit) per side"
                )
            }
            size = (width, height)
        } else if parts.count > 2 {
            throw ScreenSourceError(
                .invalidSpecification,
                "`\(argument)` has too many parts; write synthetic:NAME or synthetic:NAME:WIDTHxHEIGHT")
        }
        return .synthetic(kind, width: size.width, height: size.height)
    }

    /// Opens the source. `fps` paces replay and synthetic sources (the X display is
    /// captured whenever asked); `loop` makes a replay start over after its last frame.
    public func open(fps: Double, loop: Bool) throws -> any ScreenSource {
        switch self {
        case .x11(let display):
            return try X11ScreenSource(display: display)
        case .replay(let folder):
            return try ReplayScreenSource(folder: folder, fps: fps, loop: loop)
        case .synthetic(let kind, let width, let height):
            return try SyntheticScreenSource(scene: SyntheticScene(kind, width: width, height: height), fps: fps)
        case .help:
            throw ScreenSourceError(.invalidSpecification, Self.helpText)
        }
    }

    /// The argument that parses back to this specification.
    public var description: String {
        switch self {
        case .x11(nil): "x11"
        case .x11(let display?): "x11:\(display)"
        case .replay(let folder): "replay:\(folder)"
        case .synthetic(let kind, let width, let height):
            (width, height) == Self.defaultSyntheticSize ? "synthetic:\(kind.rawValue)" : "synthetic:\(kind.rawValue):\(width)x\(height)"
        case .help: "help"
        }
    }
}

extension String {
    fileprivate func padding(toLength length: Int) -> String {
        self.count >= length ? self : self + String(repeating: " ", count: length - self.count)
    }
}
