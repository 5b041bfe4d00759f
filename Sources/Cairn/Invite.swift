import CairnCore
import CairnStore

/// Everything a new node needs to join a log and reach it: the network secret, optionally a
/// signing key already granted a role, the inviting node's address, and the log's genesis.
///
/// It travels as one line of text (``encoded()``), e.g. in a chat message or a provisioning
/// script. It carries secrets: whoever holds it can open peer sessions (and write, if it grants
/// a role), so it is shared only over a trusted channel. The format is in ARCHITECTURE.md
/// ("Invite format"):
///
///     "cairn-invite-v1:" lowercase hex of
///       u8 version = 1 | u32 n | fields [n] | checksum [8]
///     fields: u8 flags (bit 0: seed, bit 1: address) | network secret [32]
///             | [seed [32]] | [u8 length | address] | u32 body length | genesis body | signature [64]
///     checksum: the first 8 bytes of BLAKE2b-256 of every byte before it
public struct Invite: Sendable, Equatable {
    /// The log's network secret (32 bytes), the pre-shared key of peer sessions.
    public var networkSecret: [UInt8]
    /// The 32-byte Ed25519 seed of a fresh node key the inviter already granted a role, or `nil`
    /// for a read-only invite (the new node makes its own key; an admin may grant it later).
    public var nodeSeed: [UInt8]?
    /// `host:port` of the inviting node: the new node's first peer.
    public var address: String?
    /// The log's genesis entry.
    public var genesis: SignedEntry

    /// The text every token starts with; `v1` is the layout version below.
    public static let prefix = "cairn-invite-v1:"
    /// Longest token accepted (characters): room for a genesis with about a thousand writers,
    /// and a bound on what a hostile token can make the parser read.
    public static let maxTokenCharacters = 64 * 1024

    static let version: UInt8 = 1
    static let checksumBytes = 8
    static let flagSeed: UInt8 = 1 << 0
    static let flagAddress: UInt8 = 1 << 1

    public init(networkSecret: [UInt8], nodeSeed: [UInt8]?, address: String?, genesis: SignedEntry) {
        self.networkSecret = networkSecret
        self.nodeSeed = nodeSeed
        self.address = address
        self.genesis = genesis
    }

    /// The token: ``prefix`` followed by lowercase hex.
    ///
    /// Precondition: a 32-byte secret and seed and an address of at most 255 bytes, as
    /// ``CairnLog/invite(address:role:)`` and ``init(parsing:)`` make.
    public func encoded() -> String {
        precondition(networkSecret.count == DataDirectory.networkSecretByteCount, "a network secret is 32 bytes")
        precondition(nodeSeed.map { $0.count == 32 } ?? true, "a node seed is 32 bytes")
        precondition(address.map { $0.utf8.count <= 255 } ?? true, "an address is at most 255 bytes")
        var fields = ByteWriter(capacity: 128 + genesis.bodyBytes.count)
        fields.u8((nodeSeed == nil ? 0 : Invite.flagSeed) | (address == nil ? 0 : Invite.flagAddress))
        fields.raw(networkSecret)
        if let nodeSeed { fields.raw(nodeSeed) }
        if let address {
            fields.u8(UInt8(address.utf8.count))
            fields.raw(address.utf8)
        }
        fields.raw(genesis.framed)
        var token = ByteWriter(capacity: fields.bytes.count + 16)
        token.u8(Invite.version)
        token.u32(UInt32(fields.bytes.count))
        token.raw(fields.bytes)
        token.raw(Invite.checksum(token.bytes))
        return Invite.prefix + Hex.encode(token.bytes)
    }

    /// Parses a token (surrounding whitespace ignored). Every malformed, truncated, oversized,
    /// mistyped or inconsistent token is an ``InviteError``; the genesis must be a genesis
    /// entry with a valid signature.
    public init(parsing token: String) throws(InviteError) {
        let text = token.trimmingWhitespace()
        guard text.hasPrefix(Invite.prefix) else { throw .badPrefix }
        guard text.utf8.count <= Invite.maxTokenCharacters else { throw .tooLong(characters: text.utf8.count) }
        guard let bytes = Hex.decode(String(text.dropFirst(Invite.prefix.count))) else { throw .badEncoding }
        let fields = try Invite.checkedFields(of: bytes)
        self = try Invite.decodeFields(fields)
    }

    /// The fields of a token's bytes, after checking the version, the declared length (a cut
    /// token is `truncated`, not a checksum error) and the checksum (typos).
    private static func checkedFields(of bytes: [UInt8]) throws(InviteError) -> [UInt8] {
        guard bytes.count >= 5 + checksumBytes else { throw .truncated }
        guard bytes[0] == version else { throw .unsupportedVersion(bytes[0]) }
        let declared = Int(bytes[1...4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) })
        let expected = 5 + declared + checksumBytes
        guard bytes.count >= expected else { throw .truncated }
        guard bytes.count == expected else { throw .trailingData }
        let sealed = Array(bytes[..<(5 + declared)])
        guard Array(bytes[(5 + declared)...]) == checksum(sealed) else { throw .badChecksum }
        return Array(sealed[5...])
    }

    private static func decodeFields(_ fields: [UInt8]) throws(InviteError) -> Invite {
        var reader = ByteReader(fields)
        do {
            let flags = try reader.u8("flags")
            guard flags & ~(flagSeed | flagAddress) == 0 else { throw InviteError.badFlags(flags) }
            let secret = Array(try reader.raw(DataDirectory.networkSecretByteCount, "network secret"))
            let seed = flags & flagSeed == 0 ? nil : Array(try reader.raw(32, "node seed"))
            let address = flags & flagAddress == 0 ? nil : try readAddress(&reader)
            let genesis = try readGenesis(&reader)
            guard reader.isAtEnd else { throw InviteError.trailingData }
            return Invite(networkSecret: secret, nodeSeed: seed, address: address, genesis: genesis)
        } catch let error as InviteError {
            throw error
        } catch is ByteReader.Truncated {
            throw .truncated
        } catch {
            preconditionFailure("unexpected error \(error)")
        }
    }

    private static func readAddress(_ reader: inout ByteReader) throws -> String {
        let length = Int(try reader.u8("address length"))
        guard let address = String(validating: try reader.raw(length, "address"), as: UTF8.self),
            (try? PeerAddress.normalized(address)) == address
        else { throw InviteError.badAddress }
        return address
    }

    private static func readGenesis(_ reader: inout ByteReader) throws -> SignedEntry {
        let genesis: SignedEntry
        do {
            genesis = try SignedEntry.readFramed(from: &reader)
        } catch EntryFormatError.truncated {
            throw InviteError.truncated
        } catch {
            throw InviteError.badGenesis(error.description)
        }
        guard case .genesis = genesis.payload else { throw InviteError.badGenesis("a \(genesis.kind) entry, not a genesis") }
        guard genesis.hasValidSignature else { throw InviteError.badGenesis("bad signature") }
        return genesis
    }

    /// The first ``checksumBytes`` bytes of BLAKE2b-256: enough to catch any typo, short
    /// enough to keep tokens pasteable. (Integrity against tampering is the channel's job.)
    static func checksum(_ bytes: [UInt8]) -> [UInt8] {
        Array(Blake2b.hash256(bytes).bytes.prefix(checksumBytes))
    }
}

/// Why an invite token cannot be used.
public enum InviteError: Error, Equatable, CustomStringConvertible {
    /// The text does not start with `cairn-invite-v1:`.
    case badPrefix
    /// After the prefix, not an even number of hex digits.
    case badEncoding
    /// Longer than ``Invite/maxTokenCharacters``.
    case tooLong(characters: Int)
    /// Shorter than its declared length, or a field runs past the end (a token cut short).
    case truncated
    /// Bytes beyond the declared length or after the last field.
    case trailingData
    /// The checksum does not match (a mistyped token).
    case badChecksum
    /// A layout version this Cairn does not know.
    case unsupportedVersion(UInt8)
    /// Flag bits this version does not define.
    case badFlags(UInt8)
    /// The inviting node's address is not UTF-8 `host:port`.
    case badAddress
    /// The node seed is not 32 bytes (an ``Invite`` built by hand).
    case badSeed
    /// The genesis is not a well-formed, correctly signed genesis entry.
    case badGenesis(String)

    public var description: String {
        switch self {
        case .badPrefix: "not a Cairn invite (it starts with \(Invite.prefix))"
        case .badEncoding: "corrupt invite: not hexadecimal"
        case .tooLong(let characters): "invite too long (\(characters) characters, at most \(Invite.maxTokenCharacters))"
        case .truncated: "invite is truncated (copy all of it)"
        case .trailingData: "corrupt invite: unexpected bytes after its end"
        case .badChecksum: "invite checksum mismatch (a mistyped or altered token)"
        case .unsupportedVersion(let version): "unsupported invite version \(version)"
        case .badFlags(let flags): "corrupt invite: unknown flags \(flags)"
        case .badAddress: "corrupt invite: the peer address is not host:port"
        case .badSeed: "invalid invite: the node seed is not 32 bytes"
        case .badGenesis(let reason): "invalid invite: bad genesis entry (\(reason))"
        }
    }
}

extension CairnLog {
    /// Makes an invite to this log: the network secret, this node's `address` (its listening
    /// `host:port`, validated; `nil` if the new node will be told its peers otherwise) and the
    /// genesis. With a `role`, it also generates a fresh signing key, grants it `role` (an
    /// add-writer entry: this node must be an admin) and puts its seed in the invite; with
    /// `nil` the invite is read-only.
    public func invite(address: String?, role: Role?) throws(CairnError) -> Invite {
        try CairnError.translating {
            let address = try address.map { try PeerAddress.normalized($0) }
            let secret = try networkSecret()
            var seed: [UInt8]?
            if let role {
                let key = SigningKey.generate()
                try addWriter(key.publicKey, role: role)
                seed = key.seed
            }
            return Invite(networkSecret: secret, nodeSeed: seed, address: address, genesis: try genesis)
        }
    }
}
