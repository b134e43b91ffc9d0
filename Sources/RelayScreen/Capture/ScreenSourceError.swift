/// Why a screen source could not be opened, or could not capture or inject. The message
/// says what happened and what to do.
public struct ScreenSourceError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What class of problem this is.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case invalidSpecification
            case invalidFrameRate
            case displayUnavailable
            case unsupportedVisual
            case captureFailed
            case injectionFailed
            case emptyFolder
            case sizeMismatch
            case unreadableFrame
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// `--source` named an unknown kind or scene, or was malformed.
        public static let invalidSpecification = Kind(.invalidSpecification)
        /// `--fps` was zero, negative or not a number.
        public static let invalidFrameRate = Kind(.invalidFrameRate)
        /// The X display could not be opened.
        public static let displayUnavailable = Kind(.displayUnavailable)
        /// The X screen's pixel layout is not one the capture converts (depth 24/32 TrueColor).
        public static let unsupportedVisual = Kind(.unsupportedVisual)
        /// The X server refused or failed a capture.
        public static let captureFailed = Kind(.captureFailed)
        /// The X server has no XTest extension, or refused an injected event.
        public static let injectionFailed = Kind(.injectionFailed)
        /// A replay folder holds no PNG frames.
        public static let emptyFolder = Kind(.emptyFolder)
        /// A replay folder's frames are not all the same size.
        public static let sizeMismatch = Kind(.sizeMismatch)
        /// A replay frame could not be read or decoded.
        public static let unreadableFrame = Kind(.unreadableFrame)

        public var description: String {
            switch self.base {
            case .invalidSpecification: "invalid source"
            case .invalidFrameRate: "invalid frame rate"
            case .displayUnavailable: "display unavailable"
            case .unsupportedVisual: "unsupported visual"
            case .captureFailed: "capture failed"
            case .injectionFailed: "injection failed"
            case .emptyFolder: "empty folder"
            case .sizeMismatch: "size mismatch"
            case .unreadableFrame: "unreadable frame"
            }
        }
    }

    public let kind: Kind
    /// What went wrong and what to do, in a sentence for the user.
    public let message: String

    init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { self.message }
}
