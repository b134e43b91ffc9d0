import Synchronization

/// A value shared between the tasks of one agent session, behind a lock.
package final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    package init(_ value: Value) { self.mutex = Mutex(value) }

    package func withLock<Result: Sendable>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try self.mutex.withLock { value in try body(&value) }
    }
}
