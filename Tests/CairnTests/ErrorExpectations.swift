import Cairn
import Testing

/// Expects `body` to throw a ``CairnError`` whose underlying error is `expected`.
func expectFailure<E: Error & Equatable, T>(_ expected: E, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T) {
    do {
        _ = try body()
        Issue.record("expected \(expected), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as CairnError {
        #expect(error.underlying as? E == expected, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a CairnError wrapping \(expected), got \(error)", sourceLocation: sourceLocation)
    }
}

/// Expects `body` to throw a ``CairnError`` whose underlying error is `expected`.
func expectFailure<E: Error & Equatable, T>(_ expected: E, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T) async {
    do {
        _ = try await body()
        Issue.record("expected \(expected), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as CairnError {
        #expect(error.underlying as? E == expected, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a CairnError wrapping \(expected), got \(error)", sourceLocation: sourceLocation)
    }
}

/// Expects `body` to throw a ``CairnError`` whose underlying error is of type `E`.
func expectFailure<E: Error, T>(of type: E.Type, sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> T) {
    do {
        _ = try body()
        Issue.record("expected a \(E.self), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as CairnError {
        #expect(error.underlying is E, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a CairnError wrapping a \(E.self), got \(error)", sourceLocation: sourceLocation)
    }
}

/// Expects `body` to throw a ``CairnError`` whose underlying error is of type `E`.
func expectFailure<E: Error, T>(of type: E.Type, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> T) async {
    do {
        _ = try await body()
        Issue.record("expected a \(E.self), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as CairnError {
        #expect(error.underlying is E, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a CairnError wrapping a \(E.self), got \(error)", sourceLocation: sourceLocation)
    }
}
