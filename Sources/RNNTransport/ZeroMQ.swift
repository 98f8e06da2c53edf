import CZeroMQ

/// Facts about the linked libzmq. (The transport itself arrives with distributed training.)
public enum ZeroMQ {
    /// `major.minor.patch` of the libzmq this binary runs with.
    public static var version: String {
        var major: Int32 = 0, minor: Int32 = 0, patch: Int32 = 0
        zmq_version(&major, &minor, &patch)
        return "\(major).\(minor).\(patch)"
    }

    /// Whether libzmq was built with CURVE security (needed for authenticated remote workers).
    public static var hasCurve: Bool { zmq_has("curve") == 1 }
}
