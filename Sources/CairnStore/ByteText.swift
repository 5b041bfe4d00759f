/// Whether two optional strings have the same UTF-8 bytes (both `nil` counts as the same).
///
/// Buckets and keys are byte strings (entry format §2.1). Swift's `==` on `String` is
/// canonical equivalence (`"\u{e9}" == "e\u{301}"`), so it must not decide whether two keys,
/// buckets or stored columns are the same.
func sameBytes(_ a: String?, _ b: String?) -> Bool {
    switch (a, b) {
    case (nil, nil): true
    case let (a?, b?): a.utf8.elementsEqual(b.utf8)
    default: false
    }
}
