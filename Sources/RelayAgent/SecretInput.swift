import Foundation

/// Where an agent takes a secret from (the engineer token, an enrolled host's secret),
/// so that it never has to appear on the command line, where every local user sees it
/// in `ps` (issue 10, item 12).
///
/// In this order: the flag itself (`--token`, kept for tests and warned about), a file
/// (`--token-file FILE`, which must be readable by its owner only; `-` reads standard
/// input), then an environment variable (`RELAY_TOKEN`).
struct SecretInput {
    /// What the secret is, in messages: "engineer token".
    let what: String
    /// The flag that takes the secret itself: `--token`.
    let flag: String
    /// The flag that names a file: `--token-file`.
    let fileFlag: String
    /// The environment variable: `RELAY_TOKEN`.
    let variable: String

    static let engineerToken = SecretInput(what: "engineer token", flag: "--token", fileFlag: "--token-file", variable: "RELAY_TOKEN")
    static let hostSecret = SecretInput(what: "host secret", flag: "--secret", fileFlag: "--secret-file", variable: "RELAY_HOST_SECRET")

    /// A secret and what to tell the user about how it was given.
    struct Resolved: Equatable {
        var value: String
        /// A warning for standard error, when the way it was given is unsafe.
        var warning: String?
    }

    /// How the secret was read: the file system and standard input are passed in so that
    /// tests need neither.
    struct Sources {
        var environment: [String: String]
        /// The file's permission bits and its contents.
        var readFile: (String) throws -> (mode: UInt16, contents: String)
        var readStandardInput: () -> String?

        static var system: Sources {
            Sources(
                environment: ProcessInfo.processInfo.environment,
                readFile: { path in
                    let attributes = try FileManager.default.attributesOfItem(atPath: path)
                    let mode = (attributes[.posixPermissions] as? NSNumber)?.uint16Value ?? 0o777
                    return (mode, try String(contentsOfFile: path, encoding: .utf8))
                },
                readStandardInput: { String(data: FileHandle.standardInput.readDataToEndOfFile(), encoding: .utf8) }
            )
        }
    }

    /// Whether any of the three ways was used (an enrolled host needs a secret; an
    /// attended one must not get one).
    func isGiven(flagValue: String?, file: String?, environment: [String: String]) -> Bool {
        flagValue != nil || file != nil || environment[self.variable].map { !$0.isEmpty } == true
    }

    /// The secret, from the first of flag, file and environment that was given.
    /// The secret for a command: resolved from the flag, the file, the environment or
    /// stdin, with a warning printed when it came from the flag; a failure is the
    /// command's error, in words.
    func value(flagValue: String?, file: String?) throws -> String {
        let resolved: Resolved
        do {
            resolved = try self.resolve(flagValue: flagValue, file: file, from: .system)
        } catch {
            throw AgentFailure(description: "\(error)")
        }
        if let warning = resolved.warning { warn(warning) }
        return resolved.value
    }

    func resolve(flagValue: String?, file: String?, from sources: Sources) throws -> Resolved {
        if flagValue != nil, file != nil {
            throw SecretInputError("give \(self.flag) or \(self.fileFlag), not both")
        }
        if let flagValue {
            return Resolved(
                value: try self.checked(flagValue, origin: self.flag),
                warning:
                    "warning: \(self.flag) puts the \(self.what) on the command line, where every user of this machine can read it (ps); use \(self.fileFlag) FILE (mode 0600), \(self.fileFlag) - (standard input) or \(self.variable) instead"
            )
        }
        if let file {
            if file == "-" {
                guard let text = sources.readStandardInput() else {
                    throw SecretInputError("\(self.fileFlag) -: standard input is not UTF-8 text; pipe the \(self.what) in, e.g. \(self.fileFlag) - < FILE")
                }
                return Resolved(value: try self.checked(text, origin: "standard input"))
            }
            let (mode, contents): (UInt16, String)
            do {
                (mode, contents) = try sources.readFile(file)
            } catch {
                throw SecretInputError("\(self.fileFlag): cannot read \(file): \(Self.reason(error)); give a file that holds the \(self.what) on one line")
            }
            // As ssh does for private keys: a secret others can read is no secret.
            guard mode & 0o077 == 0 else {
                throw SecretInputError(
                    "\(self.fileFlag): \(file) can be read by other users (mode \(String(mode & 0o777, radix: 8))); the \(self.what) must be readable by you only: run chmod 600 \(Self.quoted(file))"
                )
            }
            return Resolved(value: try self.checked(contents, origin: file))
        }
        if let value = sources.environment[self.variable], !value.isEmpty {
            return Resolved(value: try self.checked(value, origin: "$\(self.variable)"))
        }
        throw SecretInputError(
            "no \(self.what): give \(self.fileFlag) FILE (mode 0600), \(self.fileFlag) - to read it from standard input, or set \(self.variable)")
    }

    /// The secret without surrounding white space (a file ends in a newline); never empty,
    /// never more than one line.
    private func checked(_ text: String, origin: String) throws -> String {
        let value = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !value.isEmpty else { throw SecretInputError("the \(self.what) from \(origin) is empty") }
        guard !value.contains(where: \.isNewline) else {
            throw SecretInputError("the \(self.what) from \(origin) has more than one line; put only the \(self.what) in it")
        }
        return value
    }

    private static func reason(_ error: any Error) -> String {
        let nsError = error as NSError
        if let underlying = nsError.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain,
            let code = POSIXErrorCode(rawValue: Int32(underlying.code))
        {
            return String(cString: strerror(code.rawValue))
        }
        return nsError.localizedDescription
    }

    private static func quoted(_ path: String) -> String {
        path.allSatisfy { $0.isLetter || $0.isNumber || "/._-~".contains($0) } ? path : "'\(path.replacingOccurrences(of: "'", with: "'\\''"))'"
    }
}

/// A secret could not be read; the message says how to give it.
struct SecretInputError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
