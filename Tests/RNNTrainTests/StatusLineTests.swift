import Foundation
import RNNCore
import RNNTrain
import Testing

/// The live status line fits the terminal: a wrapped line is not erased by the next redraw and leaves debris.
@Suite("The status line is cut to the terminal's width", .serialized)
struct StatusLineTests {
    final class Output: @unchecked Sendable { var text = "" }

    func redraw(columns: Int) -> String {
        let out = Output()
        let reporter = ProgressReporter(isTerminal: true, level: .info, every: 1000, totalSteps: 100_000, epochs: 50,
                                        write: { out.text += $0 })
        reporter.columns = { columns }
        reporter.workers = { (alive: 3, expected: 4) }
        reporter.step(StepInfo(step: 12_345, epoch: 9, index: 7, batchesPerEpoch: 2000, loss: LossSum(sum: 1234.5, count: 1000),
                               gradientNorm: 0.75, clipped: true, lr: 0.001))
        #expect(out.text.hasPrefix("\r") && out.text.hasSuffix("\u{1B}[K"), "\(out.text.debugDescription)")
        return String(out.text.dropFirst().dropLast(3))
    }

    @Test("an injected width: cut at width − 1; a wide terminal shows the whole line")
    func injectedWidth() {
        let whole = redraw(columns: 500)
        #expect(whole.hasPrefix("epoch 10/50  step 12345/100000") && whole.contains("workers 3/4") && whole.contains("ETA "))
        #expect(whole.count > 80, "the test needs a line longer than 80 columns: \(whole)")
        for columns in [80, 40, 1] {
            let cut = redraw(columns: columns)
            #expect(cut.count == columns - 1, "\(columns) columns: \(cut.count) characters")
            // Tokens per second differ from one redraw to the next; the fixed fields come first.
            #expect("epoch 10/50  step 12345/100000".hasPrefix(cut) || cut.hasPrefix("epoch 10/50  step 12345/100000  "))
        }
    }

    @Test("the cut falls between characters, never inside a multi-byte one")
    func multiByte() {
        let line = "épée ☕️ naïve 🇫🇷 e\u{301}tude"
        for columns in 1...line.count + 2 {
            let cut = ProgressReporter.fit(line, columns: columns)
            #expect(cut.count == min(columns - 1, line.count))
            #expect(line.hasPrefix(cut))
            #expect(String(decoding: Array(cut.utf8), as: UTF8.self) == cut)
            #expect(line.utf8.starts(with: cut.utf8))
        }
        #expect(ProgressReporter.fit("épée", columns: 3) == "ép")
        #expect(ProgressReporter.fit("ab", columns: 80) == "ab")
    }

    @Test("on a 60-column pseudo-terminal every redraw fits in 59 columns; without a size, $COLUMNS, else 80")
    func realTerminal() throws {
        let args = ["train", "--dataset", "timemachine", "--data-dir", sharedDataDirectory(), "--max-tokens", "6000", "--hidden", "32",
                    "--batch-size", "8", "--num-steps", "10", "--epochs", "3", "--log-every", "20"]
        func statusLines(_ setup: String, _ environment: [String: String] = [:]) throws -> [Substring] {
            // util-linux `script` runs the command on a pty; `stty` sets the pty's size (TIOCGWINSZ reads it).
            let command = setup + ([try rnnlmBinary()] + args).map { "'\($0)'" }.joined(separator: " ")
            let tty = try run("/usr/bin/script", ["-qec", command, "/dev/null"], environment: environment.merging(["TERM": "xterm"]) { a, _ in a })
            #expect(tty.status == 0, "\(tty.stdout)\(tty.stderr)")
            // A redraw is "\r" + status + ESC[K; permanent lines end with a newline.
            let redraws = tty.stdout.split(separator: "\r").filter { $0.hasSuffix("\u{1B}[K") && $0.hasPrefix("epoch ") }
            #expect(!redraws.isEmpty, "no status line redrawn: \(tty.stdout.debugDescription)")
            return redraws.map { $0.dropLast(3) }
        }
        let narrow = try statusLines("stty cols 60; ")
        #expect(narrow.allSatisfy { $0.count <= 59 } && narrow.contains { $0.count == 59 }, "\(narrow)")
        // script's pty has no size (0 columns) unless one is set: then $COLUMNS, and without it 80.
        let fromEnvironment = try statusLines("stty cols 0; ", ["COLUMNS": "50"])
        #expect(fromEnvironment.allSatisfy { $0.count <= 49 } && fromEnvironment.contains { $0.count == 49 }, "\(fromEnvironment)")
        let fallback = try statusLines("stty cols 0; unset COLUMNS; ")
        #expect(fallback.allSatisfy { $0.count <= 79 } && fallback.contains { $0.count == 79 }, "\(fallback)")
    }
}
