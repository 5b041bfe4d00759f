import CairnCore
import CairnStore
import Cairn
import Foundation
import Testing

@testable import CairnSync

/// The daemon speaks standard Noise: an independent implementation (Python `noiseprotocol`,
/// installed by .ci/run) completes the XXpsk3 handshake with a running node and reads its frames.
@Suite(.stopsNodes) struct NoiseInteropTests {
    @Test func pythonNoiseCompletesTheHandshakeWithARunningNode() async throws {
        var configuration = testConfiguration()
        configuration.inboundPolicy = .anyHolderOfTheSecret  // the Python client makes a fresh key
        // The node's timers stand still: a loaded machine starting Python cannot miss the
        // handshake deadline (nothing here needs a timer: the heads follow the hello at once).
        configuration.clock = ManualClock()
        let nodes = try await makeCluster("pynoise", count: 1, configuration: configuration)
        nodes[0].start()
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("interop/noise_client.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, "127.0.0.1", "\(try await nodes[0].port)", Hex.encode(try nodes[0].log.networkSecret())]
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let stdout = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "python client failed (pip install noiseprotocol pynacl; .ci/run does it): \(stderr)")

        struct Report: Decodable {
            let min_version, max_version: Int
            let log_id, node_key: String
            let static_key_bound: Bool
            let second_message_type: Int
        }
        let report = try JSONDecoder().decode(Report.self, from: stdout)
        #expect(report.log_id == nodes[0].log.logID.hex)
        #expect(report.node_key == nodes[0].log.nodeKey.hex)
        #expect(report.static_key_bound, "the node's Noise static key is its Ed25519 node key in X25519 form")
        #expect(report.min_version == 1 && report.max_version == 1)
        #expect(report.second_message_type == 2, "after the hello the node sends its heads")
    }
}
