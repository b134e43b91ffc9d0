import Foundation
public import RelayTileCodec
public import RelayWire
import Synchronization

/// A screen source playing a folder of PNG frames (`--source replay:DIR`): the folder's
/// `.png` files in name order (numbers compared by value, so `frame2` precedes
/// `frame10`), frame 0 at the first capture and one more every `1/fps` seconds of its
/// clock; after the last frame it holds that frame, or starts over with `loop`.
///
/// Every frame must have the same size; the headers are checked when the source opens,
/// so a mixed folder fails at once, naming the odd file. Frames are decoded when they
/// become current, not up front (a 1080p frame is 8 MB decoded): only the current frame
/// is kept, so a folder of any length plays in constant memory.
///
/// Input injection is ignored: a recording cannot react to it.
public final class ReplayScreenSource: ScreenSource {
    /// The folder, as given.
    public let folder: String
    /// The frames' paths, in play order.
    public let frameFiles: [String]
    public let width: Int
    public let height: Int
    public let fps: Double
    public let loop: Bool
    private let clock: ScreenClock
    private let state: Mutex<State>

    private struct State {
        var pacer: FramePacer
        var current: (index: Int, framebuffer: Framebuffer)?
    }

    /// Opens `folder` and checks that it holds PNG frames of one size.
    public init(folder: String, fps: Double, loop: Bool = false, clock: ScreenClock = .continuous) throws {
        try FramePacer.validate(fps)
        self.folder = folder
        self.frameFiles = try Self.listFrames(in: folder)
        let first = try Self.header(of: self.frameFiles[0])
        for file in self.frameFiles.dropFirst() {
            let size = try Self.header(of: file)
            guard size == first else {
                throw ScreenSourceError(
                    .sizeMismatch,
                    "replay frame \(file) is \(size.width)×\(size.height) but \(self.frameFiles[0]) is \(first.width)×\(first.height); every frame in \(folder) must have the same size — remove or rescale it"
                )
            }
        }
        (self.width, self.height) = first
        self.fps = fps
        self.loop = loop
        self.clock = clock
        self.state = Mutex(State(pacer: FramePacer(fps: fps)))
    }

    public var name: String { "replay:\(self.folder)" }

    public var frameCount: Int { self.frameFiles.count }

    /// Decodes frame `index` (0-based, in play order) — for tools that read every frame,
    /// such as the codec benchmark.
    public func frame(at index: Int) throws -> Framebuffer {
        let file = self.frameFiles[index]
        let framebuffer: Framebuffer
        do {
            framebuffer = try PNGFile.read(file)
        } catch {
            throw ScreenSourceError(.unreadableFrame, "replay frame \(error.message)")
        }
        // The folder was checked when it opened; a file replaced since must still fit.
        guard framebuffer.width == self.width, framebuffer.height == self.height else {
            throw ScreenSourceError(
                .sizeMismatch,
                "replay frame \(file) is now \(framebuffer.width)×\(framebuffer.height), not the \(self.width)×\(self.height) of the other frames; restore it or restart the host"
            )
        }
        return framebuffer
    }

    public func capture() throws -> Framebuffer {
        let now = self.clock.now()
        return try self.state.withLock { state throws -> Framebuffer in
            let elapsed = state.pacer.frameIndex(at: now)
            let index = self.loop ? elapsed % self.frameCount : min(elapsed, self.frameCount - 1)
            if let current = state.current, current.index == index {
                return current.framebuffer
            }
            let framebuffer = try self.frame(at: index)
            state.current = (index, framebuffer)
            return framebuffer
        }
    }

    /// Ignored: a replay shows what was recorded whatever the viewer does.
    public func inject(_ pointer: Pointer) {}

    /// Ignored: a replay shows what was recorded whatever the viewer does.
    public func inject(_ key: Key) {}

    // MARK: Folder

    private static func listFrames(in folder: String) throws(ScreenSourceError) -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) else {
            throw ScreenSourceError(
                .emptyFolder, "replay folder \(folder) does not exist; give a folder of PNG frames, e.g. --source replay:benchmarks/frames/terminal-scroll")
        }
        guard isDirectory.boolValue else {
            throw ScreenSourceError(.emptyFolder, "\(folder) is a file, not a folder; give the folder that holds the PNG frames")
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder)
        } catch {
            throw ScreenSourceError(.emptyFolder, "cannot list replay folder \(folder): \(error.localizedDescription); check its permissions")
        }
        let frames =
            names
            .filter { !$0.hasPrefix(".") && $0.lowercased().hasSuffix(".png") }
            .sorted { naturalOrder($0, $1) }
        guard !frames.isEmpty else {
            throw ScreenSourceError(.emptyFolder, "replay folder \(folder) holds no .png files; put frames named in play order there (0001.png, 0002.png, …)")
        }
        let prefix = folder.hasSuffix("/") ? folder : folder + "/"
        return frames.map { prefix + $0 }
    }

    private static func header(of file: String) throws(ScreenSourceError) -> (width: Int, height: Int) {
        do {
            return try PNGFile.size(of: file)
        } catch {
            throw ScreenSourceError(.unreadableFrame, "replay frame \(error.message)")
        }
    }

    /// Name order with digit runs compared as numbers: `frame2.png` < `frame10.png`.
    static func naturalOrder(_ a: String, _ b: String) -> Bool {
        var left = Array(a.unicodeScalars)[...]
        var right = Array(b.unicodeScalars)[...]
        while let l = left.first, let r = right.first {
            if ("0"..."9").contains(l), ("0"..."9").contains(r), let leftRun = Self.digitRun(&left), let rightRun = Self.digitRun(&right) {
                if leftRun != rightRun { return leftRun < rightRun }
                continue
            }
            if l != r { return l.value < r.value }
            left.removeFirst()
            right.removeFirst()
        }
        return left.count < right.count || (left.isEmpty && right.isEmpty && a < b)
    }

    /// Consumes a run of ASCII digits as (value without leading zeros, then length), so
    /// that equal values with different zero padding still order consistently.
    private static func digitRun(_ scalars: inout ArraySlice<Unicode.Scalar>) -> DigitRun? {
        let digits = scalars.prefix { ("0"..."9").contains($0) }
        guard !digits.isEmpty else { return nil }
        scalars.removeFirst(digits.count)
        let significant = String(String.UnicodeScalarView(digits.drop { $0 == "0" }))
        return DigitRun(significant: significant, length: digits.count)
    }

    private struct DigitRun: Comparable {
        let significant: String
        let length: Int

        static func < (a: DigitRun, b: DigitRun) -> Bool {
            if a.significant.count != b.significant.count { return a.significant.count < b.significant.count }
            if a.significant != b.significant { return a.significant < b.significant }
            return a.length < b.length
        }
    }
}
