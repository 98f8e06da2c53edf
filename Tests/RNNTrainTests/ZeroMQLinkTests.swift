import RNNTransport
import Testing

@Test("libzmq links, is 4.x, and has CURVE (needed for authenticated remote workers)")
func zeroMQIsLinkedWithCurve() {
    #expect(ZeroMQ.version.hasPrefix("4."), "libzmq \(ZeroMQ.version)")
    #expect(ZeroMQ.hasCurve)
}
