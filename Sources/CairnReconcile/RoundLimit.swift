/// How many rounds a session may take before it is abandoned as looping.
///
/// A round is one initiator message and the responder's reply. The reference has no such bound,
/// so a buggy or hostile peer could keep a session alive forever.
public enum RoundLimit {
    /// With unlimited frames an honest session needs about `log16(n / 32) + 2` rounds
    /// (3 at a million items, 17 at 2^64), so 64 leaves a wide margin.
    public static let unlimitedFrames = 64

    /// The budget of bytes in one direction that the limited-frame default allows for.
    public static let limitedFrameBudget = 64 << 20

    /// The default for a frame size limit.
    ///
    /// - Unlimited frames (`0`): ``unlimitedFrames``.
    /// - Limited frames: 64 plus enough rounds to move ``limitedFrameBudget`` bytes (64 MiB) in
    ///   full frames, e.g. 17,288 rounds at 4096 B, 4,160 at 16 KiB, 577 at 128 KiB. Honest
    ///   sessions stay far below (1,000 scattered differences in 1M items take 247 rounds at
    ///   4096 B), while a peer that never converges is cut off after a bounded amount of work.
    public static func `default`(frameSizeLimit: Int) -> Int {
        guard frameSizeLimit > NegentropyProtocol.frameSlack else { return unlimitedFrames }
        return unlimitedFrames + limitedFrameBudget / (frameSizeLimit - NegentropyProtocol.frameSlack)
    }
}
