import Dispatch

/// A raw pointer handed to `concurrentPerform` tasks that write disjoint ranges of it.
struct SendablePointer<T>: @unchecked Sendable {
    let base: UnsafeMutablePointer<T>
    init(_ base: UnsafeMutablePointer<T>) { self.base = base }
    func at(_ offset: Int) -> UnsafeMutablePointer<T> { base + offset }
}

/// Elements per range below which splitting a streaming loop across threads costs more than it saves.
let minimumElementsPerThread = 1 << 16

/// Calls `body` on up to `threads` contiguous ranges covering `0..<count`, concurrently when there is more than one:
/// each range a multiple of `alignment` elements but the last (64 floats: on a `FloatBuffer`, whose storage is
/// 64-byte aligned, no two threads write one cache line),
/// and none shorter than `minimum` (fewer ranges when `count` is too small to be worth splitting).
func forEachRange(count: Int, threads: Int, minimum: Int = minimumElementsPerThread, alignment: Int = 64,
                  _ body: @Sendable (_ part: Int, Range<Int>) -> Void) {
    let parts = max(1, min(threads, count / max(1, minimum)))
    guard parts > 1 else { if count > 0 { body(0, 0..<count) }; return }
    let chunk = (count + parts - 1) / parts, aligned = (chunk + alignment - 1) / alignment * alignment
    DispatchQueue.concurrentPerform(iterations: parts) { k in
        let lo = min(count, k * aligned), hi = min(count, lo + aligned)
        if lo < hi { body(k, lo..<hi) }
    }
}

/// Whether `body` holds on every range `forEachRange` cuts `0..<count` into: all of them run (at once when there are
/// several), each answering in a flag of its own.
func allRanges(count: Int, threads: Int, minimum: Int = minimumElementsPerThread,
               _ body: @Sendable (Range<Int>) -> Bool) -> Bool {
    var ok = [Bool](repeating: true, count: max(1, threads))
    ok.withUnsafeMutableBufferPointer { out in
        let out = SendablePointer(out.baseAddress!)
        forEachRange(count: count, threads: threads, minimum: minimum) { k, r in out.at(k).pointee = body(r) }
    }
    return !ok.contains(false)
}
