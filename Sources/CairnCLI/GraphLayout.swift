import CairnCore
import CairnStore
import Cairn

/// Draws a DAG exactly as `git log --graph` does: a port of git's `graph.c` (the history
/// graph of Adam Simpkins, with the merge and collapsing layouts of git 2.25 and later),
/// without colors. Feed it the entries in display order (children before parents) with
/// ``update(_:parents:)``, then take lines with ``nextLine()`` until the entry's own line
/// has been drawn, then the rest with ``remainder()``: the same calling sequence as git's
/// `graph_update`, `graph_show_commit` and `graph_show_remainder`.
///
/// It keeps only the open columns (one per edge still waiting for its parent), so a log of
/// any size streams through it in constant memory.
///
/// Vocabulary, as in git: a *column* is an edge waiting for its parent (its value is that
/// parent's id); `mapping` maps each character position of a row being collapsed to the
/// column it is heading for (-1: empty).
struct GitGraph {
    private enum State { case padding, skip, preCommit, commit, postMerge, collapsing }

    /// The entry being drawn and its parents that are shown (its first parent first).
    private var commit: Hash32?
    private var parents: [Hash32] = []
    private var numParents: Int { parents.count }
    /// The width of every row of the current entry (rows are padded to it).
    private var width = 0
    private var expansionRow = 0
    private var state = State.padding
    private var prevState = State.padding
    /// The column of the current entry (== columns.count when no column waited for it).
    private var commitIndex = 0
    private var prevCommitIndex = 0
    /// 0: the merge's first parent is in a column to its left; 1: otherwise (git's layouts).
    private var mergeLayout = 0
    private var edgesAdded = 0
    private var prevEdgesAdded = 0
    /// The columns before the current entry, and after it.
    private var columns: [Hash32] = []
    private var newColumns: [Hash32] = []
    /// Sized to twice the column capacity, never shrunk (git reads stale cells of
    /// `oldMapping` after a swap; so does this port, to draw the same rows).
    private var mapping: [Int] = Array(repeating: -1, count: 60)
    private var oldMapping: [Int] = Array(repeating: -1, count: 60)
    private var mappingSize = 0
    private var columnCapacity = 30

    // MARK: - Updating

    /// Starts drawing `id`, whose shown parents are `parents` (first parent first).
    mutating func update(_ id: Hash32, parents: [Hash32]) {
        commit = id
        self.parents = parents
        prevCommitIndex = commitIndex
        updateColumns()
        expansionRow = 0
        // If the previous entry did not finish its rows, a `...` row says rows were skipped.
        if state != .padding {
            state = .skip
        } else if needsPreCommitLine {
            state = .preCommit
        } else {
            state = .commit
        }
    }

    private mutating func setState(_ next: State) {
        prevState = state
        state = next
    }

    private mutating func ensureCapacity(_ count: Int) {
        guard columnCapacity < count else { return }
        repeat { columnCapacity *= 2 } while columnCapacity < count
        mapping += Array(repeating: -1, count: 2 * columnCapacity - mapping.count)
        oldMapping += Array(repeating: -1, count: 2 * columnCapacity - oldMapping.count)
    }

    private mutating func insertIntoNewColumns(_ id: Hash32, index: Int) {
        var column = newColumns.firstIndex(of: id) ?? -1
        if column < 0 {
            column = newColumns.count
            newColumns.append(id)
        }
        let mappingIndex: Int
        if numParents > 1 && index > -1 && mergeLayout == -1 {
            // The first parent of a merge: the layout depends on whether that parent's
            // column is to the left of the merge.
            let distance = index - column
            let shift = distance > 1 ? 2 * distance - 3 : 1
            mergeLayout = distance > 0 ? 0 : 1
            edgesAdded = numParents + mergeLayout - 2
            mappingIndex = width + (mergeLayout - 1) * shift
            width += 2 * mergeLayout
        } else if edgesAdded > 0 && width >= 2 && column == mapping[width - 2] {
            // A merge's edge lands in the column just left of it: the two edges join at once.
            mappingIndex = width - 2
            edgesAdded = -1
        } else {
            mappingIndex = width
            width += 2
        }
        mapping[mappingIndex] = column
    }

    private mutating func updateColumns() {
        swap(&columns, &newColumns)
        newColumns.removeAll(keepingCapacity: true)
        let maxNewColumns = columns.count + numParents
        ensureCapacity(maxNewColumns)
        mappingSize = 2 * maxNewColumns
        for index in 0..<mappingSize { mapping[index] = -1 }
        width = 0
        prevEdgesAdded = edgesAdded
        edgesAdded = 0

        var seenThis = false
        for index in 0...columns.count {
            if index == columns.count && seenThis { break }
            let columnCommit = self.columnCommit(index)
            if columnCommit == commit {
                seenThis = true
                commitIndex = index
                mergeLayout = -1
                for parent in parents { insertIntoNewColumns(parent, index: index) }
                // The entry always takes at least 2 characters, even without parents.
                if numParents == 0 { width += 2 }
            } else {
                insertIntoNewColumns(columnCommit, index: -1)
            }
        }
        while mappingSize > 1 && mapping[mappingSize - 1] < 0 { mappingSize -= 1 }
    }

    private var numDashedParents: Int { numParents + mergeLayout - 3 }
    private var numExpansionRows: Int { numDashedParents * 2 }
    private var needsPreCommitLine: Bool {
        numParents >= 3 && commitIndex < columns.count - 1 && expansionRow < numExpansionRows
    }

    private var isMappingCorrect: Bool {
        for index in 0..<mappingSize {
            let target = mapping[index]
            if target >= 0 && target != index / 2 { return false }
        }
        return true
    }

    // MARK: - Rows

    /// Whether every row of the current entry has been drawn.
    var isCommitFinished: Bool { state == .padding }

    /// The next row, and whether it is the entry's own row (`*`). Rows are padded with spaces
    /// to the entry's width, as git pads them (the entry's text follows its row directly).
    mutating func nextLine() -> (line: String, isCommit: Bool) {
        guard commit != nil else { return ("", false) }
        var line = ""
        var isCommit = false
        switch state {
        case .padding: paddingRow(&line)
        case .skip: skipRow(&line)
        case .preCommit: preCommitRow(&line)
        case .commit:
            commitRow(&line)
            isCommit = true
        case .postMerge: postMergeRow(&line)
        case .collapsing: collapsingRow(&line)
        }
        if line.utf8.count < width { line += String(repeating: " ", count: width - line.utf8.count) }
        return (line, isCommit)
    }

    /// The rows left after the entry's own row (post-merge and collapsing rows).
    mutating func remainder() -> [String] {
        var rows: [String] = []
        while !isCommitFinished { rows.append(nextLine().line) }
        return rows
    }

    /// A row that never draws the entry (git's `graph_padding_line`): before the entry's own
    /// row, the lanes extended downwards; otherwise the next row.
    mutating func paddingLine() -> String {
        guard state == .commit else { return nextLine().line }
        var line = ""
        for column in columns {
            line += "|"
            line += column == commit && numParents > 2 ? String(repeating: " ", count: (numParents - 2) * 2) : " "
        }
        if line.utf8.count < width { line += String(repeating: " ", count: width - line.utf8.count) }
        prevState = .padding
        return line
    }

    private func paddingRow(_ line: inout String) {
        for _ in newColumns { line += "| " }
    }

    private mutating func skipRow(_ line: inout String) {
        line += "..."
        setState(needsPreCommitLine ? .preCommit : .commit)
    }

    /// Rows widening the space around an octopus merge (3 or more parents) before its row.
    private mutating func preCommitRow(_ line: inout String) {
        var seenThis = false
        for (index, column) in columns.enumerated() {
            if column == commit {
                seenThis = true
                line += "|" + String(repeating: " ", count: expansionRow)
            } else if seenThis && expansionRow == 0 {
                line += prevState == .postMerge && prevCommitIndex < index ? "\\" : "|"
            } else if seenThis && expansionRow > 0 {
                line += "\\"
            } else {
                line += "|"
            }
            line += " "
        }
        expansionRow += 1
        if !needsPreCommitLine { setState(.commit) }
    }

    private func octopusDashes(_ line: inout String) {
        let dashed = numDashedParents
        guard dashed > 0 else { return }
        for index in 0..<dashed { line += index == dashed - 1 ? "-." : "--" }
    }

    /// The commit that column `index` stands for as git's graph.c walks a row: the open
    /// columns, then, one past them, the commit being drawn.
    private func columnCommit(_ index: Int) -> Hash32 {
        index == columns.count ? commit! : columns[index]
    }

    private mutating func commitRow(_ line: inout String) {
        var seenThis = false
        for index in 0...columns.count {
            if index == columns.count && seenThis { break }
            let columnCommit = self.columnCommit(index)
            if columnCommit == commit {
                seenThis = true
                line += "*"
                if numParents > 2 { octopusDashes(&line) }
            } else if seenThis && edgesAdded > 1 {
                line += "\\"
            } else if seenThis && edgesAdded == 1 {
                // A right-skewed 2-way merge or left-skewed 3-way merge: continue a `\` that
                // the previous merge's post-merge row drew into this column.
                line += prevState == .postMerge && prevEdgesAdded > 0 && prevCommitIndex < index ? "\\" : "|"
            } else if prevState == .collapsing && oldMapping[2 * index + 1] == index && mapping[2 * index] < index {
                line += "/"
            } else {
                line += "|"
            }
            line += " "
        }
        if numParents > 1 {
            setState(.postMerge)
        } else if isMappingCorrect {
            setState(.padding)
        } else {
            setState(.collapsing)
        }
    }

    private mutating func postMergeRow(_ line: inout String) {
        let mergeChars: [Character] = ["/", "|", "\\"]
        let firstParent = parents.first
        var seenThis = false
        var parentColumnSeen = false
        for index in 0...columns.count {
            if index == columns.count && seenThis { break }
            let columnCommit = self.columnCommit(index)
            if columnCommit == commit {
                seenThis = true
                var charIndex = mergeLayout
                for parentIndex in 0..<numParents {
                    line.append(mergeChars[charIndex])
                    if charIndex == 2 {
                        if edgesAdded > 0 || parentIndex < numParents - 1 { line += " " }
                    } else {
                        charIndex += 1
                    }
                }
                if edgesAdded == 0 { line += " " }
            } else if seenThis {
                line += edgesAdded > 0 ? "\\ " : "| "
            } else {
                line += "|"
                if mergeLayout != 0 || index != commitIndex - 1 { line += parentColumnSeen ? "_" : " " }
            }
            if columnCommit == firstParent { parentColumnSeen = true }
        }
        setState(isMappingCorrect ? .padding : .collapsing)
    }

    /// A row moving lanes left towards their new columns; lanes never move right, and only
    /// one lane per row crosses others (with `_` when it crosses several).
    private mutating func collapsingRow(_ line: inout String) {
        var usedHorizontal = false
        var horizontalEdge = -1
        var horizontalEdgeTarget = -1
        swap(&mapping, &oldMapping)
        for index in 0..<mappingSize { mapping[index] = -1 }

        for index in 0..<mappingSize {
            let target = oldMapping[index]
            if target < 0 { continue }
            if target * 2 == index {
                mapping[index] = target
            } else if index >= 1 && mapping[index - 1] < 0 {
                mapping[index - 1] = target
                if horizontalEdge == -1 {
                    horizontalEdge = index
                    horizontalEdgeTarget = target
                    var cell = target * 2 + 3
                    while cell < index - 2 {
                        mapping[cell] = target
                        cell += 2
                    }
                }
            } else if index >= 1 && mapping[index - 1] == target {
                // Joins the lane to its left, which heads for the same parent.
            } else if index >= 2 {
                // Crosses the lane to its left.
                mapping[index - 2] = target
                if horizontalEdge == -1 {
                    horizontalEdgeTarget = target
                    horizontalEdge = index - 1
                    var cell = target * 2 + 3
                    while cell < index - 2 {
                        mapping[cell] = target
                        cell += 2
                    }
                }
            }
        }

        for index in 0..<mappingSize { oldMapping[index] = mapping[index] }
        if mappingSize > 0 && mapping[mappingSize - 1] < 0 { mappingSize -= 1 }

        for index in 0..<mappingSize {
            let target = mapping[index]
            if target < 0 {
                line += " "
            } else if target * 2 == index {
                line += "|"
            } else if target == horizontalEdgeTarget && index != horizontalEdge - 1 {
                // Only the first segment of a horizontal edge continues on the next row.
                if index != target * 2 + 3 { mapping[index] = -1 }
                usedHorizontal = true
                line += "_"
            } else {
                if usedHorizontal && index < horizontalEdge { mapping[index] = -1 }
                line += "/"
            }
        }
        if isMappingCorrect { setState(.padding) }
    }
}

/// The parent order `log --graph` draws with, as git draws a commit's parents in order: the
/// first parent is the author's own previous entry (the parent by the same author with the
/// greatest `(hlc, id)`), else the greatest parent; the others follow by `(hlc, id)`,
/// greatest first (display order). Parents without a summary (not in the log) come last,
/// by id.
enum ParentOrder {
    static func ordered(author: PublicKey, parents: [Hash32], summaries: [Hash32: EntrySummary]) -> [Hash32] {
        guard parents.count > 1 else { return parents }
        func position(_ id: Hash32) -> (Bool, UInt64, Hash32) {
            guard let summary = summaries[id] else { return (false, 0, id) }
            return (true, summary.hlc.rawValue, id)
        }
        func greater(_ a: Hash32, _ b: Hash32) -> Bool {
            let pa = position(a), pb = position(b)
            if pa.0 != pb.0 { return pa.0 }
            if pa.1 != pb.1 { return pa.1 > pb.1 }
            return pa.2 > pb.2
        }
        var rest = parents.sorted(by: greater)
        let first = rest.first { summaries[$0]?.author == author } ?? rest[0]
        rest.removeAll { $0 == first }
        return [first] + rest
    }
}
