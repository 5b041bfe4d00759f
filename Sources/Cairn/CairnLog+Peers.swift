import CairnCore
import CairnStore

/// The peer list and peer status, local to this node (never synced). `cairn peers` edits the
/// list; the sync service dials it and records what it learns of each peer.
extension CairnLog {
    /// Adds a peer to dial, or replaces the pinned identity of the same address. Throws
    /// ``PeerAddressError`` for an address that is not `host:port`.
    public func addPeer(_ peer: PeerAddress) throws(CairnError) {
        try CairnError.translating {
            try requireWritable()
            try store.addPeer(peer)
        }
    }

    /// Removes the peer with this address; returns whether it was in the list.
    public func removePeer(address: String) throws(CairnError) -> Bool {
        try CairnError.translating {
            try requireWritable()
            return try store.removePeer(address: address)
        }
    }

    /// The peer list, by address.
    public func peers() throws(CairnError) -> [PeerAddress] { try CairnError.translating { try store.peers() } }

    /// Records what is known of a peer, replacing the previous record for its identity.
    public func savePeerStatus(_ status: PeerStatus) throws(CairnError) {
        try CairnError.translating {
            try requireWritable()
            try store.savePeerStatus(status)
        }
    }

    /// Every peer status, by identity.
    public func peerStatuses() throws(CairnError) -> [PeerStatus] { try CairnError.translating { try store.peerStatuses() } }

    /// The status of the peer with this node key, if one was saved.
    public func peerStatus(identity: PublicKey) throws(CairnError) -> PeerStatus? { try CairnError.translating { try store.peerStatus(identity: identity) } }
}
