/// Bytes that crossed between processes, counted where they cross: ZeroMQ frame payloads as handed to or taken
/// from libzmq (not ZMTP, CURVE or TCP framing; a ROUTER's peer-identity frame is local routing and not counted),
/// and shared-memory payloads as written into or read out of a `SharedPayloadRegion`.
/// A socket and any number of regions can share one meter (the coordinator's view of its link). Not thread-safe:
/// use it on the thread that uses the socket.
public final class TrafficMeter {
    /// Bytes sent (socket frames, payloads written to shared memory) and received (frames, payloads read back).
    public private(set) var sent = 0
    public private(set) var received = 0

    public init() {}

    public func didSend(_ bytes: Int) { sent += bytes }
    public func didReceive(_ bytes: Int) { received += bytes }
}
