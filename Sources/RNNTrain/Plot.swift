import Foundation

/// One epoch's perplexities, as read back from a metrics file.
public struct EpochPoint: Equatable, Sendable {
    public var epoch: Int
    public var train: Double
    public var valid: Double?
}

/// The epoch records of a metrics JSONL file, one per epoch (a later record of the same epoch, e.g. after a
/// resume, replaces an earlier one), in epoch order. Malformed lines are errors naming the line, except an
/// unfinished last one (no newline: a run killed while writing it, or one still writing), which is skipped.
public func readEpochPoints(_ path: String) throws -> [EpochPoint] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw TrainingError("cannot read the metrics file \(path)")
    }
    var byEpoch: [Int: EpochPoint] = [:]
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    for (n, line) in lines.enumerated() where !line.isEmpty {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            if n == lines.count - 1 { continue }  // unfinished: no newline after it yet
            throw TrainingError("\(path) line \(n + 1) is not a JSON object; is this an rnnlm metrics file?")
        }
        guard obj["kind"] as? String == "epoch" else { continue }
        guard let e = obj["epoch"] as? Int, let p = obj["perplexity"] as? Double else {
            throw TrainingError("\(path) line \(n + 1): an epoch record needs numeric epoch and perplexity")
        }
        byEpoch[e] = EpochPoint(epoch: e, train: p, valid: obj["val_perplexity"] as? Double)
    }
    return byEpoch.keys.sorted().map { byEpoch[$0]! }
}

/// A self-contained SVG chart of training (and validation) perplexity against epoch: one polyline per
/// series with one point per epoch, axes with ticks, a legend. `logScale` puts perplexity on a log axis.
public func perplexitySVG(_ points: [EpochPoint], logScale: Bool, title: String) -> String {
    let W = 720.0, H = 440.0, left = 72.0, right = 24.0, top = 48.0, bottom = 56.0
    let pw = W - left - right, ph = H - top - bottom
    let values = points.flatMap { [$0.train] + ($0.valid.map { [$0] } ?? []) }.filter { $0.isFinite && $0 > 0 }
    let e0 = Double(points.first?.epoch ?? 1), e1 = Double(max(points.last?.epoch ?? 1, (points.first?.epoch ?? 1) + 1))
    var lo = values.min() ?? 1, hi = values.max() ?? 2
    if hi <= lo { hi = lo * 1.1 + 1e-9 }
    let f: (Double) -> Double = logScale ? { log10($0) } : { $0 }
    var yTicks: [Double]
    if logScale {
        // Axis from the 1-2-5 tick at or below the smallest value to the one at or above the largest.
        let ladder = (-3...6).flatMap { k in [1.0, 2.0, 5.0].map { $0 * pow(10, Double(k)) } }
        lo = ladder.last { $0 <= lo * 1.0001 } ?? lo
        hi = ladder.first { $0 >= hi * 0.9999 } ?? hi
        if hi <= lo { hi = lo * 2 }
        yTicks = ladder.filter { $0 >= lo * 0.9999 && $0 <= hi * 1.0001 }
    } else {
        let step = niceStep((hi - lo) / 6)
        lo = floor(lo / step) * step; hi = ceil(hi / step) * step
        yTicks = stride(from: lo, through: hi + step / 2, by: step).map { $0 }
    }
    let x = { (e: Double) in left + (e - e0) / (e1 - e0) * pw }
    let y = { (v: Double) in top + ph - (f(v) - f(lo)) / (f(hi) - f(lo)) * ph }
    let xStep = max(1, niceStep((e1 - e0) / 8))
    let xTicks = stride(from: ceil(e0 / xStep) * xStep, through: e1, by: xStep).map { $0 }
    func esc(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
    func num(_ v: Double) -> String { String(format: "%.1f", v) }
    func label(_ v: Double) -> String { v >= 100 ? String(format: "%.0f", v) : v >= 10 ? String(format: "%.3g", v) : String(format: "%.3g", v) }
    var svg = """
    <?xml version="1.0" encoding="UTF-8"?>
    <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(W))" height="\(Int(H))" viewBox="0 0 \(Int(W)) \(Int(H))" font-family="Helvetica, Arial, sans-serif" font-size="12">
    <rect width="100%" height="100%" fill="white"/>
    <text x="\(num(W / 2))" y="26" text-anchor="middle" font-size="15" font-weight="bold">\(esc(title))</text>

    """
    for t in yTicks {
        svg += "<line x1=\"\(num(left))\" y1=\"\(num(y(t)))\" x2=\"\(num(left + pw))\" y2=\"\(num(y(t)))\" stroke=\"#e5e5e5\"/>\n"
        svg += "<text x=\"\(num(left - 8))\" y=\"\(num(y(t) + 4))\" text-anchor=\"end\" fill=\"#444\">\(label(t))</text>\n"
    }
    for t in xTicks {
        svg += "<line x1=\"\(num(x(t)))\" y1=\"\(num(top + ph))\" x2=\"\(num(x(t)))\" y2=\"\(num(top + ph + 5))\" stroke=\"#444\"/>\n"
        svg += "<text x=\"\(num(x(t)))\" y=\"\(num(top + ph + 20))\" text-anchor=\"middle\" fill=\"#444\">\(Int(t))</text>\n"
    }
    svg += "<rect x=\"\(num(left))\" y=\"\(num(top))\" width=\"\(num(pw))\" height=\"\(num(ph))\" fill=\"none\" stroke=\"#444\"/>\n"
    svg += "<text x=\"\(num(left + pw / 2))\" y=\"\(num(H - 14))\" text-anchor=\"middle\">epoch</text>\n"
    svg += "<text transform=\"translate(18 \(num(top + ph / 2))) rotate(-90)\" text-anchor=\"middle\">perplexity\(logScale ? " (log scale)" : "")</text>\n"
    let series: [(String, String, String, [(Double, Double)])] = [
        ("train", "training", "#1f77b4", points.map { (Double($0.epoch), $0.train) }),
        ("valid", "validation", "#ff7f0e", points.compactMap { p in p.valid.map { (Double(p.epoch), $0) } }),
    ]
    var legendY = top + 16
    for (id, name, color, pts) in series where !pts.isEmpty {
        let coords = pts.map { "\(num(x($0.0))),\(num(y(max($0.1, lo))))" }.joined(separator: " ")
        svg += "<polyline id=\"\(id)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(coords)\"/>\n"
        svg += "<line x1=\"\(num(left + pw - 130))\" y1=\"\(num(legendY - 4))\" x2=\"\(num(left + pw - 106))\" y2=\"\(num(legendY - 4))\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
        svg += "<text x=\"\(num(left + pw - 100))\" y=\"\(num(legendY))\">\(name)</text>\n"
        legendY += 18
    }
    svg += "</svg>\n"
    return svg
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
func niceStep(_ raw: Double) -> Double {
    guard raw > 0, raw.isFinite else { return 1 }
    let p = pow(10, floor(log10(raw)))
    for m in [1.0, 2.0, 5.0, 10.0] where m * p >= raw { return m * p }
    return 10 * p
}
