/// `--broadcast in-turn`: a synchronous step's weights go to the workers across sockets one at a time, in the
/// order the coordinator gives (worker order, a straggler still busy with a step that went on without it last).
/// Sent side by side, W copies share the coordinator's link and all arrive after W transfers, and the gradients then
/// all come back together while the outgoing direction idles; in turn, the first worker has its weights after one
/// transfer and computes and uploads while the next ones download, so a full-duplex link carries weights out and
/// gradients in at once. The last worker's weights arrive later than side by side only by
/// the acknowledgements' round trips (W − 1 of them).
///
/// The next worker's weights go when the one on the wire says they arrived (`.weightsReceived`), leaves the run,
/// or was sent them `patience` seconds ago: a worker that does not answer holds the others up for that long at
/// most, and a link slower than that degrades to sending side by side, never to a stall. A worker taken out of
/// the queue (`takeOut`) gets its weights at once: the coordinator does so before telling it new rows, which must
/// not overtake that step's weights.
public struct WeightsInTurn {
    /// One worker's weights: the whole parameters, or only what changed since the last step (`ChangedWeightRows`).
    public struct Send: Equatable, Sendable {
        public let peer: PeerID
        public let changedRows: Bool
        public init(peer: PeerID, changedRows: Bool) { self.peer = peer; self.changedRows = changedRows }
    }
    /// The step whose weights are being sent.
    public private(set) var step: UInt64 = 0
    private var queue: [Send] = []
    /// The worker whose weights are on the wire, and since when.
    public private(set) var onTheWire: (peer: PeerID, since: Double)?

    public init() {}

    /// Nothing left to send and nothing on the wire.
    public var isIdle: Bool { onTheWire == nil && queue.isEmpty }

    /// Starts the sends of `step`'s weights, in this order (anything left of an earlier step is dropped).
    public mutating func start(step: UInt64, _ sends: [Send]) {
        self.step = step
        queue = sends
        onTheWire = nil
    }

    /// The next send, once the one on the wire is done: its worker said its weights arrived, or `isGone` says it
    /// left the run, or `patience` seconds passed. Nil while it is not done, or when nothing is left. The caller
    /// sends it now (and, when the send fails, calls `next` again).
    public mutating func next(now: Double, patience: Double, isGone: (PeerID) -> Bool) -> Send? {
        if let w = onTheWire, !isGone(w.peer), now - w.since < patience { return nil }
        onTheWire = nil
        guard !queue.isEmpty else { return nil }
        let s = queue.removeFirst()
        onTheWire = (s.peer, now)
        return s
    }

    /// Takes `peer` out of the queue, when it is still there: its weights must go now (its new rows follow them).
    public mutating func takeOut(_ peer: PeerID) -> Send? {
        guard let i = queue.firstIndex(where: { $0.peer == peer }) else { return nil }
        return queue.remove(at: i)
    }

    /// `peer` says the weights of `step` arrived.
    public mutating func received(_ peer: PeerID, step: UInt64) {
        if step == self.step, onTheWire?.peer == peer { onTheWire = nil }
    }

    /// The step is over: whatever was not sent will not be.
    public mutating func clear() {
        queue = []
        onTheWire = nil
    }
}
