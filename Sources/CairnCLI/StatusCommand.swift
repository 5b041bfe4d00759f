import ArgumentParser
import Cairn

/// `cairn status`: what this node holds.
struct StatusCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the log id, name, node key, counts and heads.",
        discussion: "--json prints one object {\"log\",\"name\",\"node_key\",\"data_dir\",\"entries\",\"heads\":[{\"id\",\"hlc\",\"time\"}],\"orphans\",\"quarantined\",\"last_cursor\"}.")

    @OptionGroup var global: GlobalOptions

    @Flag(help: "Print the status as one JSON object.")
    var json = false

    func run() async throws {
        let log = try global.open()
        let name = try await log.name
        let counts = try await log.counts()
        let heads = try await log.heads()
        if json {
            try Terminal.out.json(.object([
                ("log", .string(log.logID.hex)), ("name", .string(name)), ("node_key", .string(log.nodeKey.hex)),
                ("data_dir", .string(global.path)), ("entries", .int(Int64(counts.entries))),
                ("heads", .array(heads.map { head in
                    .object([("id", .string(head.id.hex)), ("hlc", .uint(head.hlc.rawValue)),
                             ("time", .string(TimeFormat.iso(milliseconds: head.hlc.wallMilliseconds)))])
                })),
                ("orphans", .int(Int64(counts.orphans))), ("quarantined", .int(Int64(counts.quarantined))),
                ("last_cursor", .int(counts.lastCursor)),
            ]))
            return
        }
        var rows: [[String]] = [
            ["log:", log.logID.hex], ["name:", name], ["node key:", "\(log.nodeKey.hex) (public)"],
            ["data dir:", global.path], ["entries:", "\(counts.entries)"],
            ["heads:", "\(heads.count)" + (heads.count > 1 ? " (diverged: the next local write merges them)" : "")],
        ]
        rows += heads.map { ["", "\($0.id.short)  \(TimeFormat.hlc($0.hlc))"] }
        rows += [["orphans:", "\(counts.orphans)"], ["quarantined:", "\(counts.quarantined)"], ["last cursor:", "\(counts.lastCursor)"]]
        for line in formatTable(rows) { try Terminal.out.line(line) }
    }
}
