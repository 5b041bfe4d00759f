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

    /// A key may start with a combining mark: `b/\u{301}x` is bucket `b`, key `\u{301}x`,
    /// although `/` and the mark form one `Character`.
    @Test func aKeyStartingWithACombiningMarkSplitsAtTheSlash() throws {
        let sandbox = try Sandbox()
        let node = try sandbox.initLog()
        try node.ok("put", "b/\u{301}x", "mark")
        #expect(try node.run("get", "b/\u{301}x").stdoutData == Data("mark".utf8))
        #expect(try node.run("ls", "b/\u{301}").stdoutData == Data("\u{301}x\n".utf8))
        #expect(try node.run("ls").stdout.hasPrefix("b "))
    }
}
