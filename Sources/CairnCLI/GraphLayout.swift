import CairnCore
import CairnStore
import Cairn

/// Draws a DAG the way `git log --graph` does: one column ("lane") per edge still waiting for
/// its parent, `*` for an entry, `|` for a lane passing by, `/` and `\` for lanes moving left
/// (joining, or closing a gap) and right (a merge opening lanes for its extra parents).
///
/// The algorithm, for entries in display order (children before parents):
/// 1. The lane waiting for the entry is found. None: the entry is a head and opens a new lane
///    on the right. (Should several wait for it, all but the leftmost are folded into it.)
/// 2. The entry's row: `*` in its lane, `|` in the others.
/// 3. Each parent that another lane already waits for (a fork point seen from its second
///    child, or a merge's parent on another branch) is joined to that lane by a diagonal.
///    The other parents take over the entry's column, the first one in place and each further
///    one in a new column right after it (a merge, drawn `|\`), lanes to the right shifting
///    over. An entry left with no lane to continue (no parents, or all joined) closes its
///    column and the lanes to its right shift left.
///
/// Lanes move one column per row, so a lane crossing others draws as a staircase (`| |/`,
/// `|/|`), exactly as git draws it.
struct GraphLayout {
    struct Node {
        let id: Hash32
        /// Parents in lane order: the first continues the entry's lane.
        let parents: [Hash32]
    }

    enum Row: Equatable {
        /// The row of node `index`: its graph cells, and the cells for the node's further text
        /// lines (its lane continues below it if it has parents).
        case node(index: Int, graph: String, continuation: String)
        /// A row of lane movement between two nodes.
        case connector(String)
    }

    static func layout(_ nodes: [Node]) -> [Row] {
        var lanes: [Hash32] = []
        var rows: [Row] = []
        for (index, node) in nodes.enumerated() {
            // 1. Find (or open) the entry's lane; fold the other lanes waiting for it into it.
            let waiting = lanes.indices.filter { lanes[$0] == node.id }
            let column: Int
            if let first = waiting.first {
                column = first
                let folded = Set(waiting.dropFirst())
                if !folded.isEmpty {
                    var targets: [Int] = []
                    var removedSoFar = 0
                    for lane in lanes.indices {
                        if folded.contains(lane) {
                            targets.append(column)
                            removedSoFar += 1
                        } else {
                            targets.append(lane - removedSoFar)
                        }
                    }
                    rows += move(Array(lanes.indices), to: targets).map(Row.connector)
                    lanes = lanes.indices.filter { !folded.contains($0) }.map { lanes[$0] }
                }
            } else {
                lanes.append(node.id)
                column = lanes.count - 1
            }

            // 2. The entry's row.
            rows.append(.node(
                index: index,
                graph: cells(count: lanes.count) { $0 == column ? "*" : "|" },
                continuation: cells(count: lanes.count) { $0 == column ? (node.parents.isEmpty ? " " : "|") : "|" }))

            // 3. Hand the lane to the parents (nothing to draw after the last entry). Parents
            //    already awaited by another lane are joined to it by a diagonal; the others
            //    take the entry's column and the columns opened right after it.
            let awaited = Dictionary(
                lanes.indices.filter { $0 != column }.map { (lanes[$0], $0) }, uniquingKeysWith: { first, _ in first })
            let fresh = node.parents.filter { awaited[$0] == nil }
            let joined = node.parents.compactMap { awaited[$0] }
            func newPosition(_ lane: Int) -> Int { lane < column ? lane : lane - 1 + fresh.count }
            var starts: [Int] = [], targets: [Int] = []
            for lane in lanes.indices where lane != column {
                starts.append(lane)
                targets.append(newPosition(lane))
            }
            for offset in fresh.indices {
                starts.append(column)
                targets.append(column + offset)
            }
            for lane in joined {
                starts.append(column)
                targets.append(newPosition(lane))
            }
            let isRoot = fresh.isEmpty && joined.isEmpty
            if isRoot && index < nodes.count - 1 {
                // A root of the view (no parents shown): a gap, so that the next entry drawn in
                // this column does not look like its parent.
                var gap = cells(count: lanes.count) { $0 == column ? " " : "|" }
                while gap.last == " " { gap.removeLast() }
                rows.append(.connector(gap))
            }
            lanes = Array(lanes[..<column]) + fresh + Array(lanes[(column + 1)...])
            if index < nodes.count - 1 { rows += move(starts, to: targets).map(Row.connector) }
        }
        return rows
    }

    /// `* | |`: one cell per lane, separated by spaces.
    private static func cells(count: Int, _ symbol: (Int) -> Character) -> String {
        String((0..<count).map { String(symbol($0)) }.joined(separator: " "))
    }

    /// The connector rows moving lanes from column `starts[i]` to `targets[i]`, one column
    /// per row: `|` for a lane in place, `/` for one moving left, `\` for one moving right.
    static func move(_ starts: [Int], to targets: [Int]) -> [String] {
        var positions = starts
        var rows: [String] = []
        while positions != targets {
            let width = 2 * (max(positions.max() ?? 0, targets.max() ?? 0) + 1)
            var row = [Character](repeating: " ", count: width)
            for lane in positions.indices {
                let position = positions[lane], target = targets[lane]
                if position == target {
                    if row[2 * position] == " " { row[2 * position] = "|" }
                } else if position > target {
                    row[2 * position - 1] = "/"
                    positions[lane] -= 1
                } else {
                    row[2 * position + 1] = "\\"
                    positions[lane] += 1
                }
            }
            var text = String(row)
            while text.last == " " { text.removeLast() }
            rows.append(text)
        }
        return rows
    }
}
