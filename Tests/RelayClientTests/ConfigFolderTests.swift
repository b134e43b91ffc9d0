import Foundation
import RelayClient
import RelayTestSupport
import Testing

/// Where the agent keeps its keys and pins, from an injected environment: these tests
/// never read or write the real home folder.
@Suite struct ConfigFolderTests {
    @Test("XDG_CONFIG_HOME when it is an absolute path, else HOME/.config; supportrelay inside")
    func location() throws {
        #expect(try ConfigFolder.locate(environment: ["XDG_CONFIG_HOME": "/x/config", "HOME": "/home/kim"]).path == "/x/config/supportrelay")
        #expect(try ConfigFolder.locate(environment: ["XDG_CONFIG_HOME": "/x/config/", "HOME": "/home/kim"]).path == "/x/config/supportrelay")
        // The XDG specification: a relative or empty XDG_CONFIG_HOME is ignored.
        #expect(try ConfigFolder.locate(environment: ["XDG_CONFIG_HOME": "relative", "HOME": "/home/kim"]).path == "/home/kim/.config/supportrelay")
        #expect(try ConfigFolder.locate(environment: ["XDG_CONFIG_HOME": "", "HOME": "/home/kim"]).path == "/home/kim/.config/supportrelay")
        #expect(try ConfigFolder.locate(environment: ["HOME": "/home/kim"]).path == "/home/kim/.config/supportrelay")
        #expect(try ConfigFolder.locate(environment: ["HOME": "/home/kim"], home: "/other").path == "/other/.config/supportrelay")
        let folder = ConfigFolder(path: "/c/supportrelay")
        #expect(folder.engineerKeyPath == "/c/supportrelay/engineer.key")
        #expect(folder.hostKeyPath(hostID: "ho_7f3a9c2e") == "/c/supportrelay/host-ho_7f3a9c2e.key")
        #expect(folder.knownHostsPath == "/c/supportrelay/known_hosts")
        #expect(folder.knownHosts.path == "/c/supportrelay/known_hosts")
    }

    @Test("create makes the folder and missing parents with mode 0700, and the default keys in it with 0600")
    func createsPrivateFolders() throws {
        let temporary = try TemporaryFolder()
        let home = temporary.file("home")
        let folder = try ConfigFolder.locate(environment: ["HOME": home])
        try folder.create()
        #expect(try FileModes.mode(home) == 0o700)
        #expect(try FileModes.mode(home + "/.config") == 0o700)
        #expect(try FileModes.mode(folder.path) == 0o700)
        let (engineer, created) = try folder.engineerKey()
        #expect(created)
        #expect(try FileModes.mode(folder.engineerKeyPath) == 0o600)
        #expect(try folder.engineerKey().key.rawRepresentation == engineer.rawRepresentation)
        let (host, hostCreated) = try folder.hostKey(hostID: "ho_1")
        #expect(hostCreated)
        #expect(host.rawRepresentation != engineer.rawRepresentation)
        #expect(try temporary.names("home/.config/supportrelay") == ["engineer.key", "host-ho_1.key"])
    }

    @Test("an existing folder is kept as it is, unless other users can change it")
    func exposedFolderRefused() throws {
        let temporary = try TemporaryFolder()
        let folder = ConfigFolder(path: temporary.file("supportrelay"))
        try FileManager.default.createDirectory(atPath: folder.path, withIntermediateDirectories: false)
        try FileModes.set(folder.path, 0o755)
        try folder.create()
        #expect(try FileModes.mode(folder.path) == 0o755)
        try FileModes.set(folder.path, 0o777)
        let error = #expect(throws: IdentityFileError.self) { try folder.create() }
        #expect(error?.kind == .exposed)
        #expect(error?.message.contains("chmod 700 \(folder.path)") == true)
        #expect(throws: IdentityFileError.self) { try folder.engineerKey() }
        #expect(try temporary.names("supportrelay") == [])
    }

    @Test("a file where the folder should be is reported, and left as it was")
    func fileInTheWay() throws {
        let temporary = try TemporaryFolder()
        try FileModes.write(temporary.file("config"), "not a folder", mode: 0o644)
        let folder = try ConfigFolder.locate(environment: ["XDG_CONFIG_HOME": temporary.file("config"), "HOME": temporary.file("home")])
        let error = #expect(throws: IdentityFileError.self) { try folder.create() }
        #expect(error?.kind == .unavailable)
        #expect(error?.message.contains(temporary.file("config")) == true)
        #expect(try FileModes.mode(temporary.file("config")) == 0o644)
        #expect(try String(contentsOfFile: temporary.file("config"), encoding: .utf8) == "not a folder")
    }

    @Test("host key file names: safe ids as they are, others made safe and told apart by a digest")
    func hostKeyFileNames() {
        #expect(ConfigFolder.hostKeyFileName(hostID: "ho_7f3a9c2e") == "host-ho_7f3a9c2e.key")
        #expect(ConfigFolder.hostKeyFileName(hostID: "A-z.0_9") == "host-A-z.0_9.key")
        let unsafe = ["../../etc/passwd", "a/b", "a b", "회계팀", "", "a\u{0}b", String(repeating: "x", count: 300)]
        var names = Set<String>()
        for id in unsafe {
            let name = ConfigFolder.hostKeyFileName(hostID: id)
            #expect(name.hasPrefix("host-") && name.hasSuffix(".key"))
            #expect(name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }, "\(name)")
            #expect(name.utf8.count <= 130)
            names.insert(name)
        }
        #expect(names.count == unsafe.count)
        // The digest keeps an unsafe id from taking a safe id's file.
        #expect(ConfigFolder.hostKeyFileName(hostID: "a/b") != ConfigFolder.hostKeyFileName(hostID: "a_b"))
    }
}
