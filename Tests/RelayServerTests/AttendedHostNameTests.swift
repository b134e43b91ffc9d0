import Testing

@testable import RelayServer

@Suite("Attended host name")
struct AttendedHostNameTests {
    @Test func withoutANameTheAddressAlone() {
        #expect(AttendedHostName.display(machineName: nil, address: "203.0.113.5") == "customer PC at 203.0.113.5")
        #expect(AttendedHostName.display(machineName: "", address: "::1") == "customer PC at ::1")
        #expect(AttendedHostName.display(machineName: " \t\u{7}\u{200B}\n", address: "10.0.0.9") == "customer PC at 10.0.0.9")
    }

    @Test func theNameGoesInFrontOfTheAddress() {
        #expect(AttendedHostName.display(machineName: "DESKTOP-7Q2", address: "203.0.113.5") == "DESKTOP-7Q2 (customer PC at 203.0.113.5)")
        #expect(AttendedHostName.display(machineName: "회계팀 PC", address: "10.0.0.9") == "회계팀 PC (customer PC at 10.0.0.9)")
    }

    @Test func controlAndFormatCharactersGoAndSpacesFold() {
        #expect(AttendedHostName.clean("  a\t\tb\r\nc  ") == "a b c")
        #expect(AttendedHostName.clean("evil\u{1B}[31mred") == "evil[31mred")
        // A right-to-left override cannot turn the text around in the engineer's window.
        #expect(AttendedHostName.clean("PC\u{202E}exe.txt") == "PCexe.txt")
        #expect(AttendedHostName.clean("zero\u{200B}width\u{FEFF}") == "zerowidth")
        #expect(AttendedHostName.clean("private\u{E000}use") == "privateuse")
        #expect(AttendedHostName.clean("👩\u{200D}💻 desk") == "👩\u{200D}💻 desk")
    }

    @Test func longNamesAreCutAtSixtyFourCharacters() {
        let long = String(repeating: "가", count: 100)
        let cleaned = AttendedHostName.clean(long)!
        #expect(cleaned.count == AttendedHostName.maximumLength)
        #expect(cleaned.hasSuffix("…"))
        #expect(cleaned.hasPrefix(String(repeating: "가", count: 63)))
        let exact = String(repeating: "x", count: 64)
        #expect(AttendedHostName.clean(exact) == exact)
    }
}
