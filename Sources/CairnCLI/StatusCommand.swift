import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn status`: what this node holds, and what it knows of its peers.
struct StatusCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the log id, name, node key, counts, heads, network secret and peers.",
        discussion: """
            Peer status rows are what the sync service (cairn serve) last recorded for each peer: \
            its identity, address, state, last sync, the newest HLC among the heads it advertised, \
            lag (our newest head's time minus that HLC's, 0 when it is ahead) and entries sent, \
            received and rejected, and its last error.

            --json prints one object {"log","name","node_key","data_dir","network_secret" \
            ("present", "missing" or "unusable"),"entries","heads":[{"id","hlc","time"}],"orphans",\
            "quarantined","last_cursor","peers":[{"address","identity"}],"peer_status":[{"identity",\
            "address","state","last_connected_ms","last_connected","last_sync_ms","last_sync",\
            "heads_hlc","heads_time","lag_ms","entries_sent","entries_received","entries_rejected",\
            "last_error"}]} (absent values are null).

            EXAMPLES:
              cairn status
              cairn status --json
            """)

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print the status as one JSON object.")
    var json = false

    func run() async throws {
        let log = try global.openForReading()
        let name = try await log.name
        let counts = try await log.counts()
        let heads = try await log.heads()
        let secret = SecretState(of: log)
        let peers = try await log.peers()
        let statuses = try await log.peerStatuses()
        // Heads come oldest first: the last one is our newest, the reference for peer lag.
        let newest = heads.last?.hlc ?? .zero
        let restored = try await log.newestOwnEntryNotWrittenHere()
        if let restored {
            Terminal.error(
                "cairn: warning: this node's newest entry \(restored.short) was not written from this data directory: it was restored from an older copy (or its node key runs elsewhere). Sync before writing (see README, \"Restoring a node from a backup\").")
        }
        if json {
            try Terminal.out.json(.object([
                ("log", .string(log.logID.hex)), ("name", .string(name)), ("node_key", log.hasNodeKey ? .string(log.nodeKey.hex) : .null),
                ("data_dir", .string(global.path)), ("network_secret", .string(secret.json)),
                ("entries", .int(Int64(counts.entries))),
                ("heads", .array(heads.map { head in
                    .object([("id", .string(head.id.hex)), ("hlc", .uint(head.hlc.rawValue)),
                             ("time", .string(TimeFormat.iso(milliseconds: head.hlc.wallMilliseconds)))])
                })),
                ("orphans", .int(Int64(counts.orphans))), ("quarantined", .int(Int64(counts.quarantined))),
                ("last_cursor", .int(counts.lastCursor)),
                ("restored_warning", .optional(restored?.hex)),
                ("peers", .array(peers.map(peerJSON))),
                ("peer_status", .array(statuses.map { statusJSON($0, newest: newest) })),
            ]))
            return
        }
        var rows: [[String]] = [
            ["log:", log.logID.hex], ["name:", name], ["node key:", log.hasNodeKey ? "\(log.nodeKey.hex) (public)" : "none (no usable node.key; opened read-only)"],
            ["data dir:", global.path], ["network secret:", secret.text], ["entries:", "\(counts.entries)"],
            ["heads:", "\(heads.count)" + (heads.count > 1 ? " (diverged: the next local write merges them)" : "")],
        ]
        rows += heads.map { ["", "\($0.id.short)  \(TimeFormat.hlc($0.hlc))"] }
        rows += [["orphans:", "\(counts.orphans)"], ["quarantined:", "\(counts.quarantined)"], ["last cursor:", "\(counts.lastCursor)"]]
        rows.append(["peers:", peers.isEmpty ? "none (cairn peers add HOST:PORT)" : "\(peers.count)"])
        rows += peers.map { ["", $0.address + ($0.identity.map { "  pinned \($0.short)" } ?? "")] }
        for line in formatTable(rows) { try Terminal.out.line(line) }
        guard !statuses.isEmpty else { return }
        try Terminal.out.line("")
        for line in formatTable(statusTable(statuses, newest: newest)) { try Terminal.out.line(line) }
    }

    /// One row per peer status under a header; '-' for what is not known.
    private func statusTable(_ statuses: [PeerStatus], newest: HLC) -> [[String]] {
        [["PEER", "ADDRESS", "STATE", "LAST SYNC", "HEADS", "LAG", "SENT", "RECEIVED", "REJECTED", "LAST ERROR"]]
            + statuses.map { status in
                [status.identity.short, status.address, status.state,
                 status.lastSyncMilliseconds.map { TimeFormat.iso(milliseconds: $0) } ?? "-",
                 status.headsHLC.map(TimeFormat.hlc) ?? "-",
                 status.lagMilliseconds(behind: newest).map { TimeFormat.duration(milliseconds: $0) } ?? "-",
                 "\(status.entriesSent)", "\(status.entriesReceived)", "\(status.entriesRejected)",
                 status.lastError.map(oneLine) ?? "-"]
            }
    }

    private func statusJSON(_ status: PeerStatus, newest: HLC) -> JSON {
        func time(_ ms: UInt64?) -> JSON { .optional(ms.map { TimeFormat.iso(milliseconds: $0) }) }
        func number(_ value: UInt64?) -> JSON { value.map { .uint($0) } ?? .null }
        return .object([
            ("identity", .string(status.identity.hex)), ("address", .string(status.address)), ("state", .string(status.state)),
            ("last_connected_ms", number(status.lastConnectedMilliseconds)), ("last_connected", time(status.lastConnectedMilliseconds)),
            ("last_sync_ms", number(status.lastSyncMilliseconds)), ("last_sync", time(status.lastSyncMilliseconds)),
            ("heads_hlc", number(status.headsHLC?.rawValue)), ("heads_time", time(status.headsHLC?.wallMilliseconds)),
            ("lag_ms", number(status.lagMilliseconds(behind: newest))),
            ("entries_sent", .int(status.entriesSent)), ("entries_received", .int(status.entriesReceived)),
            ("entries_rejected", .int(status.entriesRejected)), ("last_error", .optional(status.lastError)),
        ])
    }

    /// An error message on one table line.
    private func oneLine(_ text: String) -> String { text.split(whereSeparator: \.isNewline).joined(separator: " ") }
}

/// Whether this node holds its log's network secret (`init`, `join`, `status`).
enum SecretState {
    case present
    case missing
    /// The file is there but refused (readable by others, not 64 hex digits).
    case unusable(String)

    init(of log: CairnLog) {
        do {
            _ = try log.networkSecret()
            self = .present
        } catch DataDirectoryError.noNetworkSecret {
            self = .missing
        } catch {
            self = .unusable(ErrorReport.message(for: error) ?? "\(error)")
        }
    }

    var json: String {
        switch self {
        case .present: "present"
        case .missing: "missing"
        case .unusable: "unusable"
        }
    }

    var text: String {
        switch self {
        case .present: "present (network.key)"
        case .missing: "missing: cannot sync (join with an invite, or copy network.key from a node of this log)"
        case .unusable(let reason): "unusable: \(reason)"
        }
    }
}
