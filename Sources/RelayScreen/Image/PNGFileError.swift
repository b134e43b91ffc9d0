/// Why a PNG file could not be read or written. The message names the file and says what
/// to do about it.
public struct PNGFileError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What class of problem this is.
    public struct Kind: Hashable, Sendable, CustomStringConvertible {
        private enum Base: Hashable, Sendable {
            case fileNotFound
            case notPNG
            case unreadable
            case tooLarge
            case writeFailed
        }

        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// Nothing (or a folder) is at the path.
        public static let fileNotFound = Kind(.fileNotFound)
        /// The file does not start with the PNG signature.
        public static let notPNG = Kind(.notPNG)
        /// The file is a PNG that libpng could not decode (truncated, corrupt, no permission).
        public static let unreadable = Kind(.unreadable)
        /// The image is larger than a screen the protocol can carry.
        public static let tooLarge = Kind(.tooLarge)
        /// The PNG could not be written (folder missing, no permission, disk full).
        public static let writeFailed = Kind(.writeFailed)

        public var description: String {
            switch self.base {
            case .fileNotFound: "file not found"
            case .notPNG: "not a PNG"
            case .unreadable: "unreadable PNG"
            case .tooLarge: "image too large"
            case .writeFailed: "write failed"
            }
        }
    }

    public let kind: Kind
    /// The file the problem is about.
    public let path: String
    /// What went wrong and what to do, in a sentence for the user.
    public let message: String

    init(_ kind: Kind, path: String, _ message: String) {
        self.kind = kind
        self.path = path
        self.message = message
    }

    public var description: String { self.message }
}
