import RelayScreen
import Testing

@Suite struct ScreenSourceSpecificationTests {
    @Test(arguments: [
        ("x11", ScreenSourceSpecification.x11(display: nil)),
        ("x11::1", .x11(display: ":1")),
        ("x11:otherhost:0.0", .x11(display: "otherhost:0.0")),
        ("replay:frames/terminal", .replay(folder: "frames/terminal")),
        ("replay:/tmp/a:b", .replay(folder: "/tmp/a:b")),
        ("synthetic:scrolling-text", .synthetic(.scrollingText, width: 1280, height: 720)),
        ("synthetic:moving-window", .synthetic(.movingWindow, width: 1280, height: 720)),
        ("synthetic:video:640x360", .synthetic(.video, width: 640, height: 360)),
        ("help", .help),
    ])
    func parses(_ argument: String, _ expected: ScreenSourceSpecification) throws {
        let specification = try ScreenSourceSpecification(parsing: argument)
        #expect(specification == expected)
        // What it prints parses back to the same source.
        #expect(try ScreenSourceSpecification(parsing: specification.description) == specification)
    }

    @Test(arguments: [
        ("vnc:host", "unknown screen source `vnc:host`"),
        ("", "unknown screen source ``"),
        ("X11", "unknown screen source `X11`"),
        ("x11:", "names no display"),
        ("replay", "names no folder"),
        ("replay:", "names no folder"),
        ("synthetic", "names no scene"),
        ("synthetic:fireworks", "unknown synthetic scene `fireworks`; the scenes are scrolling-text, moving-window, video"),
        ("synthetic:video:640", "is not a scene size"),
        ("synthetic:video:10x10", "at least 96x96"),
        ("synthetic:video:640x99999", "at most 16384"),
        ("synthetic:video:640x360:extra", "too many parts"),
        ("help:me", "unknown screen source"),
    ])
    func rejects(_ argument: String, _ expectedMessage: String) {
        let error = #expect(throws: ScreenSourceError.self) { try ScreenSourceSpecification(parsing: argument) }
        #expect(error?.kind == .invalidSpecification)
        #expect(error?.message.contains(expectedMessage) == true, "\(error?.message ?? "")")
    }

    @Test func anUnknownKindListsTheSources() {
        let error = #expect(throws: ScreenSourceError.self) { try ScreenSourceSpecification(parsing: "webcam") }
        #expect(error?.message.contains(ScreenSourceSpecification.helpText) == true)
    }

    @Test func helpListsEveryKindAndSceneOnItsOwnLine() {
        let lines = ScreenSourceSpecification.helpText.split(separator: "\n")
        for prefix in ["x11 ", "x11:DISPLAY", "replay:DIR", "synthetic:NAME", "help"] {
            #expect(lines.contains { $0.trimmingPrefixSpaces.hasPrefix(prefix) }, "no line for \(prefix)")
        }
        for kind in SyntheticScene.Kind.allCases {
            #expect(lines.contains { $0.trimmingPrefixSpaces.hasPrefix(kind.rawValue + " ") && $0.contains(kind.summary) })
        }
    }

    @Test func opensASyntheticSourceOfTheGivenSize() throws {
        let source = try ScreenSourceSpecification(parsing: "synthetic:video:160x120").open(fps: 10, loop: false)
        #expect(source.name == "synthetic:video")
        let frame = try source.capture()
        #expect(frame.width == 160 && frame.height == 120)
    }

    @Test func openingChecksTheFrameRate() {
        let error = #expect(throws: ScreenSourceError.self) {
            try ScreenSourceSpecification.synthetic(.video, width: 160, height: 120).open(fps: 0, loop: false)
        }
        #expect(error?.kind == .invalidFrameRate)
        #expect(error?.message.contains("--fps 30") == true)
    }

    @Test func openingHelpGivesTheList() {
        let error = #expect(throws: ScreenSourceError.self) { try ScreenSourceSpecification.help.open(fps: 10, loop: false) }
        #expect(error?.message == ScreenSourceSpecification.helpText)
    }

    @Test func openingAMissingReplayFolderSaysSo() {
        let error = #expect(throws: ScreenSourceError.self) {
            try ScreenSourceSpecification.replay(folder: "/nonexistent/frames").open(fps: 10, loop: false)
        }
        #expect(error?.message.contains("replay folder /nonexistent/frames does not exist") == true)
    }

    @Test func anUnreachableDisplaySaysWhatToDo() {
        // No server listens on display 987; Xlib fails at once on the missing socket.
        let error = #expect(throws: ScreenSourceError.self) { try ScreenSourceSpecification.x11(display: ":987").open(fps: 10, loop: false) }
        #expect(error?.kind == .displayUnavailable)
        #expect(error?.message.contains("cannot open X display :987") == true)
        #expect(error?.message.contains("set --source x11:DISPLAY") == true)
    }
}

extension Substring {
    fileprivate var trimmingPrefixSpaces: Substring { self.drop { $0 == " " } }
}
