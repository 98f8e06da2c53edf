import RNNProtocol
import Testing

/// `--broadcast in-turn`'s order: one worker's weights on the wire at a time, in the given order; the next when
/// the last one's arrived, its worker left, or the patience ran out; nothing of a finished step is sent.
@Suite("Weights in turn")
struct WeightsInTurnTests {
    let a: PeerID = [1], b: PeerID = [2], c: PeerID = [3]

    func sends(_ peers: [PeerID]) -> [WeightsInTurn.Send] { peers.map { WeightsInTurn.Send(peer: $0, changedRows: $0 != [3]) } }

    @Test func oneAtATimeInOrderEachWhenTheLastArrived() {
        var t = WeightsInTurn()
        #expect(t.isIdle)
        t.start(step: 7, sends([a, b, c]))
        let none: (PeerID) -> Bool = { _ in false }
        #expect(t.next(now: 0, patience: 5, isGone: none) == WeightsInTurn.Send(peer: a, changedRows: true))
        #expect(t.next(now: 1, patience: 5, isGone: none) == nil, "a's weights are still on the wire")
        t.received(b, step: 7)  // not the one on the wire
        t.received(a, step: 6)  // another step's
        #expect(t.next(now: 1, patience: 5, isGone: none) == nil)
        t.received(a, step: 7)
        #expect(t.next(now: 1.5, patience: 5, isGone: none)?.peer == b)
        t.received(b, step: 7)
        #expect(t.next(now: 2, patience: 5, isGone: none) == WeightsInTurn.Send(peer: c, changedRows: false))
        #expect(!t.isIdle)
        t.received(c, step: 7)
        #expect(t.next(now: 2, patience: 5, isGone: none) == nil)
        #expect(t.isIdle)
    }

    @Test func aWorkerThatLeftOrTookTooLongDoesNotHoldTheOthers() {
        var t = WeightsInTurn()
        t.start(step: 3, sends([a, b, c]))
        _ = t.next(now: 10, patience: 5, isGone: { _ in false })
        #expect(t.next(now: 11, patience: 5, isGone: { $0 == [1] })?.peer == b, "a left the run")
        #expect(t.next(now: 15.9, patience: 5, isGone: { _ in false }) == nil)
        #expect(t.next(now: 16, patience: 5, isGone: { _ in false })?.peer == c, "b's weights were sent 5 s ago")
    }

    @Test func aFinishedStepSendsNothingMoreAndANewStepStartsOver() {
        var t = WeightsInTurn()
        t.start(step: 1, sends([a, b]))
        _ = t.next(now: 0, patience: 5, isGone: { _ in false })
        t.clear()
        #expect(t.isIdle)
        #expect(t.next(now: 100, patience: 5, isGone: { _ in true }) == nil)
        t.start(step: 2, sends([b, a]))
        #expect(t.next(now: 100, patience: 5, isGone: { _ in false })?.peer == b)
        t.start(step: 3, sends([c]))
        #expect(t.next(now: 100, patience: 5, isGone: { _ in false })?.peer == c, "a new step drops what was left")
        #expect(t.step == 3)
    }
}
