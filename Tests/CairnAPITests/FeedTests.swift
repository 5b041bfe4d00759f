@testable import CairnAPI
import Cairn
import Foundation
import Testing

@Suite struct FeedTests {
    /// The lines `cairn tail` prints for the log (the same encoder), to compare with the feed.
    private func tailLines(_ log: CairnLog, after cursor: Cursor = .start) async throws -> [String] {
        var renderer = ChangeEventJSON(logID: log.logID.hex, name: try await log.name, encoding: .none, tombstones: false, transactions: false)
        for try await change in log.changes(after: cursor) { renderer.render(change) }
        return String(decoding: renderer.line.bytes, as: UTF8.self).split(separator: "\n").map(String.init)
    }

    @Test func ndjsonFeedIsTheTailLinesByteForByte() async throws {
        try await withServedLog(name: "feed") { log, address in
            try await log.put("t", "a", [1])
            try await log.put("t", "a", [2])
            try await log.delete("t", "a")
            let reply = try await TestHTTP.send(.GET, "/v1/changes?follow=false", to: address)
            #expect(reply.status == 200)
            #expect(reply.header("Content-Type") == "application/x-ndjson")
            #expect(reply.text.split(separator: "\n").map(String.init) == (try await tailLines(log)))
            let resumed = try await TestHTTP.send(.GET, "/v1/changes?follow=false&cursor=2", to: address)
            #expect(resumed.text.split(separator: "\n").map(String.init) == (try await tailLines(log, after: 2)))
        }
    }

    @Test func aFollowingFeedDeliversNewWrites() async throws {
        try await withServedLog { log, address in
            let lines = try await TestHTTP.exchange(.GET, "/v1/changes?cursor=1", to: address) { head, chunks in
                #expect(head.status.code == 200)
                var lines: [String] = []
                var pending = ""
                try await log.put("t", "a", [1])
                try await log.put("t", "b", [2])
                for try await chunk in chunks {
                    pending += String(decoding: chunk, as: UTF8.self)
                    while let newline = pending.firstIndex(of: "\n") {
                        lines.append(String(pending[..<newline]))
                        pending = String(pending[pending.index(after: newline)...])
                    }
                    if lines.count == 2 { break }
                }
                return lines
            }
            #expect(lines == (try await tailLines(log, after: 1)))
        }
    }

    @Test func serverSentEventsCarryCursorsAndResumeFromLastEventID() async throws {
        try await withServedLog { log, address in
            for value in 1...3 { try await log.put("t", "k", [UInt8(value)]) }
            let reply = try await TestHTTP.send(
                .GET, "/v1/changes?follow=false", to: address, headers: [("Accept", "text/event-stream"), ("Last-Event-ID", "2")])
            #expect(reply.header("Content-Type") == "text/event-stream")
            let events = reply.text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
            #expect(events.count == 2)
            let expected = try await tailLines(log, after: 2)
            for (event, line) in zip(events, expected) {
                let fields = event.split(separator: "\n")
                #expect(fields.first.map(String.init)?.hasPrefix("id: ") == true)
                #expect(fields.contains("event: change"))
                #expect(fields.last.map(String.init) == "data: " + line)
            }
            #expect(events.map { $0.split(separator: "\n")[0] } == ["id: 3", "id: 4"])
        }
    }

    @Test func snapshotStartsWithEveryLiveKey() async throws {
        try await withServedLog { log, address in
            try await log.put("t", "a", [1])
            try await log.put("t", "b", [2])
            let reply = try await TestHTTP.send(.GET, "/v1/changes?snapshot=true&follow=false", to: address)
            let lines = reply.text.split(separator: "\n")
            let operations = try lines.map { line in
                try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])["op"] as? String
            }
            #expect(operations == ["r", "r"])
        }
    }

    /// A consumer that has caught up and then falls more than the buffer behind gets a final
    /// LAGGED line naming the cursor to resume from; resuming there loses nothing.
    @Test func aLaggingConsumerIsToldWhereToResume() async throws {
        var limits = APIConfiguration.Limits()
        limits.feedBuffer = 5
        try await withServedLog(configuration: try APIConfiguration(listen: "127.0.0.1:0", limits: limits)) { log, address in
            let start = try await log.counts().lastCursor
            let received = try await TestHTTP.exchange(.GET, "/v1/changes?cursor=\(start - 1)", to: address) { _, chunks in
                var text = ""
                var wrote = false
                for try await chunk in chunks {
                    text += String(decoding: chunk, as: UTF8.self)
                    // The first line proves the consumer caught up; then writers run far ahead at once.
                    if !wrote, text.contains("\n") {
                        wrote = true
                        try await log.write((0..<50).map { .put(bucket: "t", key: "k\($0)", value: [1]) })
                    }
                }
                return text.split(separator: "\n").map(String.init)
            }
            let lastLine = try #require(received.last)
            let last = try #require(try JSONSerialization.jsonObject(with: Data(lastLine.utf8)) as? [String: Any])
            #expect(last["status"] as? String == "LAGGED")
            let resume = try #require(last["cursor"] as? Int)
            #expect(resume == Int(start) + received.count - 2)
            let rest = try await TestHTTP.send(.GET, "/v1/changes?follow=false&cursor=\(resume)", to: address)
            let restCount = rest.text.split(separator: "\n").count
            #expect(Int(start) + 50 - resume == restCount)
        }
    }
}

extension FeedTests {
    /// An idle following feed writes heartbeat lines (how the server finds out that a consumer
    /// left: only a write fails), and they never hide a change.
    @Test func anIdleFeedSendsHeartbeats() async throws {
        var limits = APIConfiguration.Limits()
        limits.feedHeartbeat = .milliseconds(10)
        try await withServedLog(configuration: try APIConfiguration(listen: "127.0.0.1:0", limits: limits)) { log, address in
            let lines = try await TestHTTP.exchange(.GET, "/v1/changes", to: address) { _, chunks in
                var text = ""
                for try await chunk in chunks {
                    text += String(decoding: chunk, as: UTF8.self)
                    if text.components(separatedBy: "{\"status\":\"HEARTBEAT\"}\n").count > 2 { break }
                }
                return text.split(separator: "\n").map(String.init)
            }
            let changes = lines.filter { $0 != "{\"status\":\"HEARTBEAT\"}" }
            #expect(changes == (try await tailLines(log)))
        }
    }
}
