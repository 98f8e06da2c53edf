import Foundation
import Testing

/// A run that blows up says so, on every path, and names the fix; it does not carry on with an infinite
/// perplexity until a save fails on it.
@Suite("Divergence is reported")
struct DivergenceTests {
    @Test("a loss that overflows perplexity, though finite, is divergence (the run used to end on a failed save advising to free space)",
          arguments: [["--lr", "1e30"], ["--lr", "1e6", "--clip", "0"], ["--lr", "1e30", "--workers", "2"],
                      ["--init-scheme", "normal", "--init-std", "1e30"]])
    func hugeLossIsDivergence(_ flags: [String]) throws {
        let dir = temporaryDirectory()
        let text = String(repeating: "the time traveller was expounding a recondite matter to us. ", count: 80)
        try text.write(toFile: dir + "/small.txt", atomically: true, encoding: .utf8)
        let r = try run(try rnnlmBinary(), ["train", "--corpus", dir + "/small.txt", "--hidden", "16", "--batch-size", "4",
                                            "--num-steps", "8", "--epochs", "1", "--checkpoint-dir", dir + "/ck"] + flags, timeout: 120)
        #expect(r.status == 1, "\(flags): status \(r.status)")
        #expect(r.stderr.contains("training diverged at step") && r.stderr.contains("lower --lr"), "\(flags): \(r.stderr)")
        #expect(!r.stderr.contains("free space"), "\(flags): \(r.stderr)")
    }
}
