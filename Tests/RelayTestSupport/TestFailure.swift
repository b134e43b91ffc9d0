/// A test's own failure with a message: a reply it did not expect, a step that did not
/// happen. Shared by the test targets.
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
