import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `--log-format`: how log records are written to stderr.
enum LogFormat: String, CaseIterable, Sendable {
    /// swift-log's `StreamLogHandler` lines: `TIME LEVEL LABEL: METADATA [SOURCE] MESSAGE`.
    case text
    /// One JSON object per line: `{"ts","level","label","message","metadata"}`.
    case json
}

/// A swift-log handler writing one JSON object per line to stderr:
/// `{"ts":"2026-11-29T10:00:00.123Z","level":"info","label":"cairn.sync","message":"…","metadata":{…}}`.
/// Metadata values are strings (nested lists and dictionaries become arrays and objects). Each
/// line goes out in one `write(2)`, so lines from several threads never interleave.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    init(label: String, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let line = JSON.object([
            ("ts", .string(TimeFormat.iso(milliseconds: SystemClockMilliseconds.now()))),
            ("level", .string(event.level.rawValue)),
            ("label", .string(label)),
            ("message", .string(event.message.description)),
            ("metadata", .object(merged.sorted { $0.key < $1.key }.map { ($0.key, Self.json($0.value)) })),
        ]).rendered + "\n"
        Self.emit(line)
    }

    private static func json(_ value: Logger.MetadataValue) -> JSON {
        switch value {
        case .string(let text): .string(text)
        case .stringConvertible(let value): .string(value.description)
        case .array(let values): .array(values.map(json))
        case .dictionary(let values): .object(values.sorted { $0.key < $1.key }.map { ($0.key, json($0.value)) })
        }
    }

    private static let lock = Mutex(())

    private static func emit(_ line: String) {
        lock.withLock { _ in
            var bytes = Array(line.utf8)
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { return }
                offset += written
            }
            bytes.removeAll()
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch.
enum SystemClockMilliseconds {
    static func now() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return UInt64(spec.tv_sec) * 1000 + UInt64(spec.tv_nsec) / 1_000_000
    }
}
