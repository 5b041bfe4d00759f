import Foundation
import Testing

@Suite("cairn: keys are byte strings")
struct KeyBytesCommandTests {
    /// Precomposed and decomposed "é" are two keys for `put`, `get` and `ls`, and verify stays clean.
    @Test func canonicallyEquivalentKeysStayApart() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        try node.ok("put", "b/caf\u{e9}", "precomposed")
        try node.ok("put", "b/cafe\u{301}", "decomposed")
        #expect(try node.run("get", "b/caf\u{e9}").stdoutData == Data("precomposed".utf8))
        #expect(try node.run("get", "b/cafe\u{301}").stdoutData == Data("decomposed".utf8))
        let listed = try node.run("ls", "b").stdoutData
        #expect(listed == Data("cafe\u{301}\ncaf\u{e9}\n".utf8))
        try node.ok("verify")
    }
}
