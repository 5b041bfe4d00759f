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
            lag, and entries sent, received and rejected, and its last error. Lag is this node's: \
            how many entries the peer holds that this node lacks and how long it has lacked the \
            oldest of them ("0" when it lacks none), as measured at the last heads exchange, fetch \
            batch, push or reconciliation round ("≥N" while a delta fetch runs: the count is then \
            a lower bound, the peer's heads this node lacks).

            --json prints one object {"log","name","node_key","data_dir","network_secret" \
            ("present", "missing" or "unusable"),"entries","heads":[{"id","hlc","time"}],"orphans",\
            "quarantined","waiting_for_quarantined","heads_ahead","last_cursor","peers":[{"address","identity"}],"peer_status":[{"identity",\
            "address","state","last_connected_ms","last_connected","last_sync_ms","last_sync",\
            "heads_hlc","heads_time","lag_entries","lag_entries_lower_bound","lag_ms","entries_sent","entries_received","entries_rejected",\
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
        let now = SystemWallClock().nowMilliseconds()
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
                ("waiting_for_quarantined", .int(Int64(counts.waitingForQuarantine))), ("heads_ahead", .int(Int64(counts.headsAhead))),
                ("last_cursor", .int(counts.lastCursor)),
                ("restored_warning", .optional(restored?.hex)),
                ("peers", .array(peers.map(peerJSON))),
                ("peer_status", .array(statuses.map { statusJSON($0, now: now) })),
            ]))
            return
        }
        var rows: [[String]] = [
            ["log:", log.logID.hex], ["name:", name], ["node key:", log.hasNodeKey ? "\(log.nodeKey.hex) (public)" : "none (no usable node.key; opened read-only)"],
            ["data dir:", global.path], ["network secret:", secret.text], ["entries:", "\(counts.entries)"],
            ["heads:", "\(heads.count)" + (heads.count > 1 ? " (diverged: the next local write merges them)" : "")],
        ]
        rows += heads.map { ["", "\($0.id.short)  \(TimeFormat.hlc($0.hlc))"] }
        rows += [["orphans:", "\(counts.orphans)"], ["quarantined:", "\(counts.quarantined)"]]
        if counts.waitingForQuarantine > 0 {
            rows.append(["", "\(counts.waitingForQuarantine) more waiting for quarantined ancestors"])
        }
        if counts.headsAhead > 0 {
            rows.append(["heads ahead:", "\(counts.headsAhead) (stamped beyond this node's clock; merged once its wall clock reaches them)"])
        }
        rows.append(["last cursor:", "\(counts.lastCursor)"])
        rows.append(["peers:", peers.isEmpty ? "none (cairn peers add HOST:PORT)" : "\(peers.count)"])
        rows += peers.map { ["", $0.address + ($0.identity.map { "  pinned \($0.short)" } ?? "")] }
        for line in formatTable(rows) { try Terminal.out.line(line) }
        guard !statuses.isEmpty else { return }
        try Terminal.out.line("")
        for line in formatTable(statusTable(statuses, now: now)) { try Terminal.out.line(line) }
    }

    /// One row per peer status under a header; '-' for what is not known.
    private func statusTable(_ statuses: [PeerStatus], now: UInt64) -> [[String]] {
        [["PEER", "ADDRESS", "STATE", "LAST SYNC", "HEADS", "LAG", "SENT", "RECEIVED", "REJECTED", "LAST ERROR"]]
            + statuses.map { status in
                [status.identity.short, status.address, status.state,
                 status.lastSyncMilliseconds.map { TimeFormat.iso(milliseconds: $0) } ?? "-",
                 status.headsHLC.map(TimeFormat.hlc) ?? "-",
                 lagText(status, now: now),
                 "\(status.entriesSent)", "\(status.entriesReceived)", "\(status.entriesRejected)",
                 status.lastError.map(oneLine) ?? "-"]
            }
    }

    /// "0" when this node lacks nothing the peer holds, else "N entries, AGE"; "-" if unmeasured.
    private func lagText(_ status: PeerStatus, now: UInt64) -> String {
        guard let entries = status.lagEntries else { return "-" }
        guard entries > 0 else { return "0" }
        let age = status.lagOldestMilliseconds == nil ? "" : ", " + TimeFormat.duration(milliseconds: status.lagMilliseconds(now: now) ?? 0)
        return "\(status.lagIsLowerBound ? "≥" : "")\(entries) \(entries == 1 ? "entry" : "entries")\(age)"
    }

    private func statusJSON(_ status: PeerStatus, now: UInt64) -> JSON {
        func time(_ ms: UInt64?) -> JSON { .optional(ms.map { TimeFormat.iso(milliseconds: $0) }) }
        func number(_ value: UInt64?) -> JSON { value.map { .uint($0) } ?? .null }
        return .object([
            ("identity", .string(status.identity.hex)), ("address", .string(status.address)), ("state", .string(status.state)),
            ("last_connected_ms", number(status.lastConnectedMilliseconds)), ("last_connected", time(status.lastConnectedMilliseconds)),
            ("last_sync_ms", number(status.lastSyncMilliseconds)), ("last_sync", time(status.lastSyncMilliseconds)),
            ("heads_hlc", number(status.headsHLC?.rawValue)), ("heads_time", time(status.headsHLC?.wallMilliseconds)),
            ("lag_entries", status.lagEntries.map { .int($0) } ?? .null),
            ("lag_entries_lower_bound", .bool(status.lagIsLowerBound)),
            ("lag_ms", number(status.lagMilliseconds(now: now))),
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
        } catch {
            if case .noNetworkSecret? = error.underlying as? DataDirectoryError {
                self = .missing
            } else {
                self = .unusable(ErrorReport.message(for: error) ?? "\(error)")
            }
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
