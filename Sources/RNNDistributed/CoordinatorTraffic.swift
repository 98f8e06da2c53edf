import Foundation

extension Coordinator {
    /// Bytes per step each way at the coordinator since admission: out (weights, and any carried values, heads,
    /// heartbeats) and in (gradients, carried values, heads), in all and per worker (÷ the workers in the run at
    /// the end). Counted where they cross (`TrafficMeter`): ZeroMQ frames or shared-memory payloads.
    public var trafficPerStep: (sent: Double, received: Double, workers: Int) {
        let n = Double(max(1, steps))
        return (Double(traffic.sent - trafficAtAdmission.sent) / n, Double(traffic.received - trafficAtAdmission.received) / n,
                max(1, peers.count))
    }

    /// "traffic per step: out 1,816,014 B (908,007 B per worker), in …", as the end-of-run summary prints it.
    public func trafficSummary() -> String {
        let t = trafficPerStep
        let bytes = { (x: Double) in Int(x.rounded()).formatted(.number.grouping(.automatic).locale(Locale(identifier: "en_US"))) + " B" }
        let w = Double(t.workers)
        return "traffic per step: out \(bytes(t.sent)) (\(bytes(t.sent / w)) per worker), in \(bytes(t.received)) (\(bytes(t.received / w)) per worker)"
    }
}
