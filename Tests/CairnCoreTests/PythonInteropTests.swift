import Foundation
import Testing

/// Runs the independent Python verifier (written from docs/entry-format.md) over the vectors.
@Suite struct PythonInteropTests {
    struct Run {
        let status: Int32
        let output: String
    }

    /// Runs `python3 <arguments>` in the package root, stdout and stderr merged.
    static func python(_ arguments: [String]) throws -> Run {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        process.currentDirectoryURL = corePackageRoot
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        // Read before waiting, so a full pipe cannot deadlock the child.
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, output: String(decoding: data, as: UTF8.self))
    }

    static let missingDependencies = """
        the entry interop test needs python3 with PyNaCl (the verifier uses hashlib and nacl.signing). \
        .ci/run installs them; locally: pip install pynacl
        """

    @Test func pythonVerifierAcceptsEntryVectors() throws {
        // Through the shared loader, so a CAIRN_REGENERATE_VECTORS=1 run rewrites the file first.
        _ = try loadEntryVectors()

        let probe: Run
        do {
            probe = try Self.python(["-c", "import hashlib, nacl.signing; hashlib.blake2b(digest_size=32)"])
        } catch {
            Issue.record("cannot start python3 (\(error)): \(Self.missingDependencies)")
            return
        }
        guard probe.status == 0 else {
            Issue.record("python3 or PyNaCl is missing (exit \(probe.status)): \(Self.missingDependencies)\n\(probe.output)")
            return
        }

        let script = corePackageRoot.appendingPathComponent("Tests/interop/verify_entries.py").path
        let result = try Self.python([script, entryVectorsURL.path])
        let lastLine = result.output.split(separator: "\n").last.map(String.init) ?? ""
        #expect(result.status == 0, "verify_entries.py exited \(result.status):\n\(result.output)")
        #expect(lastLine.hasSuffix(" passed, 0 failed"), "unexpected summary:\n\(result.output)")
        if let passed = lastLine.split(separator: " ").first.flatMap({ Int($0) }) {
            let file = try loadEntryVectors()
            let total = file.positive.count + file.negative.count + file.badSignatures.count
            #expect(passed == total, "the verifier checked \(passed) of \(total) vectors")
        }
    }
}
