import CairnCore
import CairnStore
import Cairn
import Foundation
import Testing

/// A genesis signed by a fixed key, for tokens built by hand.
private let inviter = SigningKey(seed: [UInt8](repeating: 7, count: 32))!
private let sampleGenesis = try! SignedEntry(
    signing: EntryBody(
        hlc: HLC(wallMilliseconds: 1_763_700_000_000, counter: 0), author: inviter.publicKey, parents: [],
        payload: .genesis(name: "invites", writers: [WriterGrant(key: inviter.publicKey, role: .admin)])),
    with: inviter)
private let sampleInvite = Invite(
    networkSecret: [UInt8](repeating: 0xA5, count: 32), nodeSeed: [UInt8](repeating: 0x3C, count: 32),
    address: "127.0.0.1:7401", genesis: sampleGenesis)

/// The invite fields of the documented layout, with each part replaceable.
private func fields(
    flags: UInt8 = 0b11, seed: [UInt8] = [UInt8](repeating: 1, count: 32), address: [UInt8] = Array("node-a:7401".utf8),
    genesis: [UInt8] = sampleGenesis.framed
) -> [UInt8] {
    var w = ByteWriter()
    w.u8(flags)
    w.raw([UInt8](repeating: 2, count: 32))
    if flags & 1 != 0 { w.raw(seed) }
    if flags & 2 != 0 {
        w.u8(UInt8(address.count))
        w.raw(address)
    }
    w.raw(genesis)
    return w.bytes
}

/// A token around `fields` with a correct checksum: a hostile or inconsistent token that no
/// typo produced.
private func sealed(_ fields: [UInt8], version: UInt8 = 1, declaredLength: Int? = nil) -> String {
    var w = ByteWriter()
    w.u8(version)
    w.u32(UInt32(declaredLength ?? fields.count))
    w.raw(fields)
    let checksum = Blake2b.hash256(w.bytes).bytes.prefix(8)
    return Invite.prefix + Hex.encode(w.bytes + checksum)
}

/// One way to spoil a token, and the error it must give.
enum BadToken: String, CaseIterable, Sendable {
    case otherPrefix, noPrefix, notHex, oddLength, tooLong, cutShort, tooShortForAHeader, extraBytes, typo,
         futureVersion, unknownFlags, addressWithoutPort, addressNotUTF8, genesisOverrunsFields, bytesAfterGenesis,
         notAGenesis, forgedGenesis, garbageGenesis

    var token: String {
        let good = sampleInvite.encoded()
        let hex = String(good.dropFirst(Invite.prefix.count))
        switch self {
        case .otherPrefix: return "cairn-invite-v2:" + hex
        case .noPrefix: return hex
        case .notHex: return Invite.prefix + "g" + hex.dropFirst()
        case .oddLength: return good + "0"
        case .tooLong: return Invite.prefix + String(repeating: "0", count: Invite.maxTokenCharacters)
        case .cutShort: return String(good.dropLast(10))
        case .tooShortForAHeader: return Invite.prefix + "0100"
        case .extraBytes: return good + "00"
        case .typo:
            // A digit inside the network secret (after the 5-byte header), changed.
            var characters = Array(good)
            let index = Invite.prefix.count + 20
            characters[index] = characters[index] == "0" ? "1" : "0"
            return String(characters)
        case .futureVersion: return sealed(fields(), version: 2)
        case .unknownFlags: return sealed(fields(flags: 0b111))
        case .addressWithoutPort: return sealed(fields(address: Array("node-a".utf8)))
        case .addressNotUTF8: return sealed(fields(address: [0xFF, 0xFE, 0x3A, 0x31]))
        case .genesisOverrunsFields: return sealed(Array(fields().dropLast(30)))
        case .bytesAfterGenesis: return sealed(fields() + [0])
        case .notAGenesis:
            let put = try! SignedEntry(
                signing: EntryBody(hlc: sampleGenesis.hlc.successor, author: inviter.publicKey, parents: [sampleGenesis.id],
                                   payload: .put(bucket: "b", key: "k", value: ValueRef(of: [1]))),
                with: inviter)
            return sealed(fields(genesis: put.framed))
        case .forgedGenesis:
            var framed = sampleGenesis.framed
            framed[framed.count - 1] ^= 1
            return sealed(fields(genesis: framed))
        case .garbageGenesis: return sealed(fields(genesis: [0, 0, 0, 3, 9, 9, 9] + [UInt8](repeating: 0, count: 64)))
        }
    }

    var expected: InviteError {
        switch self {
        case .otherPrefix, .noPrefix: .badPrefix
        case .notHex, .oddLength: .badEncoding
        case .tooLong: .tooLong(characters: Invite.prefix.count + Invite.maxTokenCharacters)
        case .cutShort, .tooShortForAHeader, .genesisOverrunsFields: .truncated
        case .extraBytes, .bytesAfterGenesis: .trailingData
        case .typo: .badChecksum
        case .futureVersion: .unsupportedVersion(2)
        case .unknownFlags: .badFlags(0b111)
        case .addressWithoutPort, .addressNotUTF8: .badAddress
        case .notAGenesis: .badGenesis("a put entry, not a genesis")
        case .forgedGenesis: .badGenesis("bad signature")
        case .garbageGenesis: .badGenesis(Self.garbageError.map { "\($0)" } ?? "no error")
        }
    }

    /// What the entry decoder says about the garbage body (the invite wraps its message).
    static var garbageError: EntryFormatError? {
        do {
            _ = try SignedEntry(bodyBytes: [9, 9, 9], signature: [UInt8](repeating: 0, count: 64))
            return nil
        } catch {
            return error
        }
    }
}

@Suite struct InviteTests {
    @Test func aTokenRoundTrips() throws {
        let token = sampleInvite.encoded()
        #expect(token.hasPrefix("cairn-invite-v1:"))
        #expect(token.dropFirst(Invite.prefix.count).allSatisfy { "0123456789abcdef".contains($0) })
        #expect(try Invite(parsing: token) == sampleInvite)
        // Whitespace around a pasted token is ignored; so is hex case.
        #expect(try Invite(parsing: "  \(token)\n") == sampleInvite)
        #expect(try Invite(parsing: Invite.prefix + token.dropFirst(Invite.prefix.count).uppercased()) == sampleInvite)
        // Without the optional parts.
        let bare = Invite(networkSecret: sampleInvite.networkSecret, nodeSeed: nil, address: nil, genesis: sampleGenesis)
        #expect(try Invite(parsing: bare.encoded()) == bare)
        #expect(bare.encoded().count < token.count)
        let ipv6 = Invite(networkSecret: sampleInvite.networkSecret, nodeSeed: nil, address: "[fe80::1]:7401", genesis: sampleGenesis)
        #expect(try Invite(parsing: ipv6.encoded()) == ipv6)
    }

    @Test(arguments: BadToken.allCases)
    func aBadTokenIsRefusedWithItsReason(_ bad: BadToken) {
        #expect(throws: bad.expected) { try Invite(parsing: bad.token) }
    }

    @Test func everyCutOrSingleDigitChangeIsCaught() {
        let token = sampleInvite.encoded()
        for length in stride(from: Invite.prefix.count, to: token.count, by: 7) {
            #expect(throws: InviteError.self) { try Invite(parsing: String(token.prefix(length))) }
        }
        var characters = Array(token)
        for index in stride(from: Invite.prefix.count + 10, to: characters.count, by: 13) {
            let original = characters[index]
            characters[index] = original == "a" ? "b" : "a"
            #expect(throws: InviteError.self) { try Invite(parsing: String(characters)) }
            characters[index] = original
        }
    }

    @Test func aNodeJoinedFromAnInviteWritesOnceTheGrantSyncs() async throws {
        let adminPath = temporaryPath("inviter"), nodePath = temporaryPath("invitee"), bundle = adminPath + ".bundle"
        defer { for p in [adminPath, nodePath, bundle, nodePath + ".bundle"] { try? FileManager.default.removeItem(atPath: p) } }
        let admin = try CairnLog.create(at: adminPath, name: "invites")
        let invite = try await admin.invite(address: "Node-A.example:07401", role: .writer)
        #expect(invite.address == "node-a.example:7401", "the address is normalized")
        let granted = try #require(invite.nodeSeed.flatMap(SigningKey.init(seed:))).publicKey
        #expect(try await admin.writers().contains { $0.key == granted && $0.status.role == .writer })

        let node = try CairnLog.join(at: nodePath, invite: try Invite(parsing: invite.encoded()))
        #expect(node.nodeKey == granted)
        #expect(node.logID == admin.logID)
        #expect(try node.networkSecret() == admin.networkSecret())
        #expect(try await node.peers() == [PeerAddress(address: "node-a.example:7401")])
        // The grant is in the inviter's log, not yet here.
        await expectFailure(of: StoreError.self) { try await node.put("b", "k", [1]) }

        try await admin.exportBundle(to: bundle)
        _ = try await node.importBundle(from: bundle)
        let written = try await node.put("b", "k", [1])
        try await node.exportBundle(to: nodePath + ".bundle")
        _ = try await admin.importBundle(from: nodePath + ".bundle")
        #expect(try await admin.get("b", "k") == [1])
        #expect(try await admin.entry(written.id)?.entry.author == granted)
    }

    @Test func aReadOnlyInviteGrantsNothing() async throws {
        let adminPath = temporaryPath("inviter"), nodePath = temporaryPath("reader")
        defer { for p in [adminPath, nodePath] { try? FileManager.default.removeItem(atPath: p) } }
        let admin = try CairnLog.create(at: adminPath, name: "invites")
        let invite = try await admin.invite(address: nil, role: nil)
        #expect(invite.nodeSeed == nil && invite.address == nil)
        #expect(try await admin.counts().entries == 1, "no grant entry")
        let node = try CairnLog.join(at: nodePath, invite: invite)
        #expect(try await node.peers().isEmpty)
        #expect(try await !admin.writers().contains { $0.key == node.nodeKey })
        // Any node holding the secret can pass on a read-only invite; only an admin can grant.
        #expect(try await node.invite(address: "[::1]:7401", role: nil).networkSecret == invite.networkSecret)
        await expectFailure(of: StoreError.self) { try await node.invite(address: nil, role: .writer) }
    }

    @Test func anInviteNeedsAValidAddressAndASecret() async throws {
        let path = temporaryPath("inviter")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let admin = try CairnLog.create(at: path, name: "invites")
        await expectFailure(PeerAddressError.missingPort("localhost")) { try await admin.invite(address: "localhost", role: .writer) }
        #expect(try await admin.counts().entries == 1, "nothing granted for a refused invite")
        try FileManager.default.removeItem(atPath: admin.directory.networkSecretPath)
        await expectFailure(DataDirectoryError.noNetworkSecret(path: admin.directory.networkSecretPath)) {
            try await admin.invite(address: nil, role: .writer)
        }
        #expect(try await admin.counts().entries == 1)
    }

    @Test func aHandBuiltInviteWithABadSeedLeavesNothingBehind() throws {
        let path = temporaryPath("invitee")
        defer { try? FileManager.default.removeItem(atPath: path) }
        var invite = sampleInvite
        invite.nodeSeed = [1, 2, 3]
        expectFailure(InviteError.badSeed) { try CairnLog.join(at: path, invite: invite) }
        invite.nodeSeed = nil
        invite.networkSecret = [1, 2, 3]
        expectFailure(of: DataDirectoryError.self) { try CairnLog.join(at: path, invite: invite) }
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}

@Suite struct NetworkSecretTests {
    @Test func createWritesAPrivateRandomSecret() async throws {
        let a = temporaryPath("a"), b = temporaryPath("b")
        defer { for p in [a, b] { try? FileManager.default.removeItem(atPath: p) } }
        let log = try CairnLog.create(at: a, name: "s")
        let other = try CairnLog.create(at: b, name: "s")
        var info = stat()
        #expect(stat(log.directory.networkSecretPath, &info) == 0 && info.st_mode & 0o777 == 0o600)
        let text = try String(contentsOfFile: log.directory.networkSecretPath, encoding: .utf8)
        #expect(text.count == 65 && text.hasSuffix("\n"))
        let secret = try log.networkSecret()
        #expect(secret.count == 32 && Hex.encode(secret) + "\n" == text)
        #expect(try other.networkSecret() != secret)
        // Opening again reads the same secret.
        #expect(try CairnLog.open(at: a).networkSecret() == secret)
    }

    @Test func aSecretOthersCanReadIsRefused() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "s")
        chmod(log.directory.networkSecretPath, 0o644)
        expectFailure(DataDirectoryError.badKeyFile(path: log.directory.networkSecretPath, reason: "readable by group or others (chmod 600 it)")) {
            try log.networkSecret()
        }
        expectFailure(of: DataDirectoryError.self) { try DataDirectory.readSecretFile(at: log.directory.networkSecretPath) }
    }

    @Test func aMissingSecretSaysHowToGetOne() throws {
        let path = temporaryPath()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let log = try CairnLog.create(at: path, name: "s")
        try FileManager.default.removeItem(atPath: log.directory.networkSecretPath)
        do {
            _ = try log.networkSecret()
            Issue.record("expected an error")
        } catch {
            #expect(error.underlying as? DataDirectoryError == .noNetworkSecret(path: log.directory.networkSecretPath))
            #expect(error.code == .invalidInput && error.description.contains("cairn join"))
        }
    }

    @Test func joinWritesTheSecretOnlyWhenGiven() async throws {
        let source = temporaryPath("src"), withSecret = temporaryPath("with"), without = temporaryPath("without")
        let bundle = source + ".bundle"
        defer { for p in [source, withSecret, without, bundle] { try? FileManager.default.removeItem(atPath: p) } }
        let log = try CairnLog.create(at: source, name: "s")
        try await log.exportBundle(to: bundle)
        let secret = try DataDirectory.readSecretFile(at: log.directory.networkSecretPath)
        let joined = try CairnLog.join(at: withSecret, bundle: bundle, networkSecret: secret)
        #expect(try joined.networkSecret() == secret)
        var info = stat()
        #expect(stat(joined.directory.networkSecretPath, &info) == 0 && info.st_mode & 0o777 == 0o600)
        let bare = try CairnLog.join(at: without, genesis: try await log.genesis)
        expectFailure(DataDirectoryError.noNetworkSecret(path: bare.directory.networkSecretPath)) { try bare.networkSecret() }
    }
}
