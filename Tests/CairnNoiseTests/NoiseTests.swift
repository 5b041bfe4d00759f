import CairnNoise
import Foundation
import Testing

/// One vector of `Fixtures/noise/vectors.json` (the cacophony set, filtered; see
/// ../shared/specs/README.md for the layout).
struct NoiseVector: Decodable {
    struct Message: Decodable {
        let payload: String
        let ciphertext: String
    }
    let protocol_name: String
    let init_prologue: String
    let init_static: String?
    let init_ephemeral: String
    let init_psks: [String]?
    let resp_static: String?
    let resp_ephemeral: String
    let resp_psks: [String]?
    let handshake_hash: String
    let messages: [Message]
}

func hex(_ text: String) -> [UInt8] {
    stride(from: 0, to: text.count, by: 2).map { i in
        let start = text.index(text.startIndex, offsetBy: i)
        return UInt8(text[start..<text.index(start, offsetBy: 2)], radix: 16)!
    }
}

func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

let vectors: [NoiseVector] = {
    let data = try! Data(contentsOf: repositoryRoot.appendingPathComponent("Fixtures/noise/vectors.json"))
    struct File: Decodable { let vectors: [NoiseVector] }
    return try! JSONDecoder().decode(File.self, from: data).vectors
}()

func pattern(of vector: NoiseVector) -> NoisePattern {
    switch vector.protocol_name {
    case "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b": .XXpsk3
    case "Noise_XX_25519_ChaChaPoly_BLAKE2b": .XX
    default: .NN
    }
}

@Suite struct NoiseVectorTests {
    /// The published vectors, byte for byte: every handshake and transport message, both ways,
    /// and the final handshake hash.
    @Test(arguments: vectors.map(\.protocol_name))
    func reproducesThePublishedVector(name: String) throws {
        let vector = vectors.first { $0.protocol_name == name }!
        var initiator = try NoiseHandshake(
            pattern: pattern(of: vector), initiator: true, prologue: hex(vector.init_prologue),
            staticKey: vector.init_static.flatMap { NoiseKeyPair(privateKey: hex($0)) }, psk: vector.init_psks?.first.map(hex),
            ephemeralKey: NoiseKeyPair(privateKey: hex(vector.init_ephemeral)))
        var responder = try NoiseHandshake(
            pattern: pattern(of: vector), initiator: false, prologue: hex(vector.init_prologue),
            staticKey: vector.resp_static.flatMap { NoiseKeyPair(privateKey: hex($0)) }, psk: vector.resp_psks?.first.map(hex),
            ephemeralKey: NoiseKeyPair(privateKey: hex(vector.resp_ephemeral)))
        var transports: (NoiseTransport, NoiseTransport)?
        for (i, message) in vector.messages.enumerated() {
            let fromInitiator = i % 2 == 0
            let ciphertext: [UInt8]
            let payload: [UInt8]
            if var (a, b) = transports {
                if fromInitiator {
                    ciphertext = try a.sender.encrypt(hex(message.payload))
                    payload = try b.receiver.decrypt(ciphertext)
                } else {
                    ciphertext = try b.sender.encrypt(hex(message.payload))
                    payload = try a.receiver.decrypt(ciphertext)
                }
                transports = (a, b)
            } else if fromInitiator {
                ciphertext = try initiator.writeMessage(payload: hex(message.payload))
                payload = try responder.readMessage(ciphertext)
            } else {
                ciphertext = try responder.writeMessage(payload: hex(message.payload))
                payload = try initiator.readMessage(ciphertext)
            }
            #expect(hex(ciphertext) == message.ciphertext, "\(name) message \(i)")
            #expect(hex(payload) == message.payload, "\(name) message \(i)")
            if transports == nil, initiator.isComplete, responder.isComplete {
                #expect(hex(initiator.handshakeHash) == vector.handshake_hash && responder.handshakeHash == initiator.handshakeHash)
                transports = (try initiator.transport(), try responder.transport())
            }
        }
    }

    @Test func aWrongPSKFailsTheHandshake() throws {
        let psk = [UInt8](repeating: 7, count: 32)
        var initiator = try NoiseHandshake(pattern: .XXpsk3, initiator: true, staticKey: .generate(), psk: psk)
        var responder = try NoiseHandshake(pattern: .XXpsk3, initiator: false, staticKey: .generate(), psk: [UInt8](repeating: 8, count: 32))
        _ = try responder.readMessage(try initiator.writeMessage())
        _ = try initiator.readMessage(try responder.writeMessage())
        // psk3: the PSK enters with the third message, so that is where a wrong one fails.
        #expect(throws: NoiseError.decryptionFailed) { try responder.readMessage(try initiator.writeMessage(payload: [1])) }
        #expect(!responder.isComplete)
    }

    @Test func tamperedTruncatedAndOutOfTurnMessagesAreRefused() throws {
        let psk = [UInt8](repeating: 7, count: 32)
        var initiator = try NoiseHandshake(pattern: .XXpsk3, initiator: true, staticKey: .generate(), psk: psk)
        var responder = try NoiseHandshake(pattern: .XXpsk3, initiator: false, staticKey: .generate(), psk: psk)
        #expect(throws: NoiseError.outOfTurn) { try responder.writeMessage() }
        var first = try initiator.writeMessage()
        #expect(throws: NoiseError.truncatedMessage) { var copy = responder; _ = try copy.readMessage(Array(first.prefix(10))) }
        first[40] ^= 1
        #expect(throws: NoiseError.decryptionFailed) { var copy = responder; _ = try copy.readMessage(first) }
        #expect(throws: NoiseError.messageTooLong) { var copy = responder; _ = try copy.readMessage([UInt8](repeating: 0, count: 70_000)) }
    }

    @Test func aForgedTransportFrameDoesNotDesynchronizeTheSession() throws {
        let (a, b) = try establishedPair()
        var (sender, receiver) = (a.sender, b.receiver)
        let good = try sender.encrypt(Array("hello".utf8))
        var forged = good
        forged[0] ^= 1
        #expect(throws: NoiseError.decryptionFailed) { try receiver.decrypt(forged) }
        #expect(try receiver.decrypt(good) == Array("hello".utf8))
    }

    func establishedPair() throws -> (NoiseTransport, NoiseTransport) {
        let psk = [UInt8](repeating: 3, count: 32)
        var i = try NoiseHandshake(pattern: .XXpsk3, initiator: true, staticKey: .generate(), psk: psk)
        var r = try NoiseHandshake(pattern: .XXpsk3, initiator: false, staticKey: .generate(), psk: psk)
        _ = try r.readMessage(try i.writeMessage())
        _ = try i.readMessage(try r.writeMessage())
        _ = try r.readMessage(try i.writeMessage())
        return (try i.transport(), try r.transport())
    }
}

@Suite struct NoiseInteropTests {
    /// Completes a handshake and exchanges frames with an independent implementation: the
    /// Python `noiseprotocol` package (`.ci/run` installs it), driven over pipes.
    @Test func handshakesWithTheNoiseProtocolPythonPackage() throws {
        let staticKey = NoiseKeyPair.generate(), peerStatic = NoiseKeyPair.generate()
        let psk = [UInt8](repeating: 0x5a, count: 32), prologue = Array("cairn/1".utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", repositoryRoot.appendingPathComponent("Tests/interop/noise_peer.py").path,
                             hex(peerStatic.privateKey), hex(psk), hex(prologue), "3"]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        (process.standardInput, process.standardOutput, process.standardError) = (input, output, errors)
        try process.run()
        var lines = LineReader(output.fileHandleForReading)
        func send(_ bytes: [UInt8]) { input.fileHandleForWriting.write(Data((hex(bytes) + "\n").utf8)) }
        func receive() throws -> [UInt8] {
            guard let line = lines.next() else {
                let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                throw PeerFailed(message: "python peer ended early (is `pip install noiseprotocol` done? .ci/run does it): \(stderr)")
            }
            return hex(line)
        }

        var handshake = try NoiseHandshake(pattern: .XXpsk3, initiator: true, prologue: prologue, staticKey: staticKey, psk: psk)
        send(try handshake.writeMessage())
        #expect(try handshake.readMessage(try receive()) == Array("responder says hi".utf8))
        #expect(handshake.remoteStaticKey == peerStatic.publicKey)
        send(try handshake.writeMessage(payload: Array("initiator says hi".utf8)))
        var transport = try handshake.transport()
        for i in 0..<3 {
            send(try transport.sender.encrypt(Array("frame \(i)".utf8)))
            #expect(try transport.receiver.decrypt(try receive()) == Array("echo: frame \(i)".utf8))
        }
        #expect(lines.next() == "hash " + hex(handshake.handshakeHash))
        #expect(lines.next() == "remote " + hex(staticKey.publicKey))
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }
}

struct PeerFailed: Error, CustomStringConvertible { let message: String; var description: String { message } }

/// Reads newline-terminated lines from a pipe.
struct LineReader {
    let handle: FileHandle
    var buffer = Data()
    init(_ handle: FileHandle) { self.handle = handle }

    mutating func next() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                return line
            }
            let chunk = handle.availableData
            if chunk.isEmpty { return nil }
            buffer.append(chunk)
        }
    }
}
