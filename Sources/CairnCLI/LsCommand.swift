import CairnCore
import CairnStore
import ArgumentParser
import Cairn

/// `cairn ls`: buckets, or the keys of a bucket.
struct LsCommand: CairnCommand {
    static let configuration = CommandConfiguration(
        commandName: "ls",
        abstract: "List buckets, or the live keys of a bucket.",
        discussion: """
            Without an argument, lists the buckets that have live keys, with their key counts. \
            With BUCKET or BUCKET/PREFIX, lists that bucket's live keys (starting with PREFIX) in \
            byte order; --long adds the winning entry, its time, author, value length and digest.

            EXAMPLES:
              cairn ls
              cairn ls tables
              cairn ls tables/ord --long -n 20
            """)

    @OptionGroup var global: GlobalOptions

    @Argument(help: ArgumentHelp("A bucket, optionally followed by /PREFIX.", valueName: "bucket[/prefix]"))
    var target: String?

    @Flag(name: .shortAndLong, help: "Show the winning entry, time, author, length and digest of each key.")
    var long = false

    @Option(name: [.customShort("n"), .customLong("limit")], help: ArgumentHelp("List at most this many keys or buckets.", valueName: "n"))
    var limit: Int?

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
        if let target, target.isEmpty || target.hasPrefix("/") { throw ValidationError("give a bucket name, optionally followed by /PREFIX") }
    }

    func run() async throws {
        let log = try global.openForReading()
        guard let target else {
            let buckets = try await log.buckets().prefix(limit ?? .max)
            for line in formatTable(buckets.map { [Quote.cStyle($0.bucket), "\($0.keys) key\($0.keys == 1 ? "" : "s")"] }) {
                try Terminal.out.line(line)
            }
            return
        }
        let bucket: String, prefix: String
        if let split = splitAtFirstSlash(target) {
            (bucket, prefix) = split
        } else {
            (bucket, prefix) = (target, "")
        }
        var remaining = limit ?? .max
        var after: String?
        while remaining > 0 {
            let page = try await log.list(bucket, prefix: prefix, after: after, limit: min(remaining, 1000))
            guard let last = page.last else { break }
            let rows: [[String]] = page.map { state in
                guard long else { return [Quote.cStyle(state.key)] }
                let value = state.value.map { "\($0.length) B  \($0.digest.short)" } ?? "deleted"
                return [Quote.cStyle(state.key), state.entryID.short, TimeFormat.hlc(state.hlc), state.author.short, value]
            }
            let lines = long ? formatTable(rows) : rows.map { $0[0] }
            for line in lines { try Terminal.out.line(line) }
            remaining -= page.count
            after = last.key
            if page.count < 1000 { break }
        }
    }
}
