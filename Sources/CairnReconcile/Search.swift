extension RandomAccessCollection where Element: Comparable, Index == Int {
    /// The position of the last element `≤ value`, or `startIndex` when every element is above
    /// it (the collection is sorted ascending and not empty). Binary search: O(log n).
    func lastIndex(notAbove value: Element) -> Int {
        var low = startIndex
        var high = endIndex
        while high - low > 1 {
            let middle = (low + high) / 2
            if value < self[middle] { high = middle } else { low = middle }
        }
        return low
    }
}
