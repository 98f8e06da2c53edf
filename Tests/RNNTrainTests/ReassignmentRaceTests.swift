import Foundation
import RNNDistributed
import RNNTrain
import RNNTransport
import Testing

/// Row reassignments that race with a step's weights, driven in one process over `inproc://` with worker threads
/// (`runWorker`) whose deaths and joins are timed by hand through the gradient hook.
@Suite("Row reassignment races, in one process over inproc://", .serialized)
struct ReassignmentRaceTests {
    struct SimulatedDeath: Error {}

    /// Worker 0 dies right after sending its gradient for step 3 (it is not probed: the coordinator waits for
    /// worker 1 only, and does not notice), and a newcomer's hello arrives during that step. At step 4 the coordinator
    /// admits the newcomer with a row from the dead worker 0, finds worker 0 gone when telling it, and hands its last
    /// row on. Every `.columns` must reach a worker after the welcome and weights computed for its previous rows, or
    /// the worker rejects every later weights message ("N carried values, this worker's R rows need M") and the step
    /// waits for it until the step timeout.
    @Test("a donor found dead while a newcomer is admitted: its rows move in order, nobody ignores weights, the run completes")
    func deadDonorDuringAdmission() throws {
        var settings = TrainingRun.Settings(start: .new(timeMachineOptions {
            $0.maxTokens = 3000; $0.hidden = 16; $0.batchSize = 6; $0.epochs = 1; $0.numSteps = 10
        }))
        settings.dataDir = sharedDataDirectory()
        let output = CollectedOutput(), warnings = CollectedOutput()
        let context = ZMQContext()
        let endpoint = "inproc://rnnlm-race-\(UUID().uuidString)"
        let outcomes = OutcomeBox()
        let finished = DispatchSemaphore(value: 0)
        let newcomerStarted = DispatchSemaphore(value: 0)
        // A step that waits for a worker that ignores its weights is a failure within this, not a hang.
        var c = CoordinatorSettings(bind: endpoint, expectWorkers: 3, joinTimeout: 30, stepTimeout: 15)
        c.context = context
        let box = UncheckedBox(context)
        @Sendable func startWorker(_ name: String, dieAfterStep: UInt64?) {
            let t = Thread {
                let index = IndexBox()
                let hook: GradientHook = { send, frames, step, _ in
                    guard let die = dieAfterStep, step == die else { return }
                    if index.value == 1 { usleep(800_000) }  // the step ends well after worker 0 is gone
                    guard index.value == 0 else { return }
                    startWorker("newcomer", dieAfterStep: nil)
                    newcomerStarted.signal()
                    usleep(300_000)  // the newcomer's hello reaches the coordinator while it waits for this step
                    try send(frames)
                    throw SimulatedDeath()  // its socket closes; nothing tells the coordinator until it sends to it
                }
                let result = Result {
                    try runWorker(endpoint: endpoint, name: name, joinTimeout: 30, timeout: 60, rejoinGrace: 1,
                                  context: box.value, log: { line in
                                      if index.value == nil, let r = line.range(of: #"^worker (\d+):"#, options: .regularExpression) {
                                          index.value = Int(line[r].dropFirst("worker ".count).dropLast())
                                      }
                                  },
                                  warn: { warnings.sink.standardError("\(name): \($0)\n") }, beforeGradient: hook)
                }
                outcomes.record(result)
                finished.signal()
            }
            t.start()
        }
        c.afterBind = { for i in 0..<3 { startWorker("thread-\(i)", dieAfterStep: 3) } }
        settings.coordinator = c
        let summary = try TrainingRun(settings: settings, output: output.sink, stop: .never).run()
        let log = output.standardOutput + output.standardError
        #expect(newcomerStarted.wait(timeout: .now()) == .success, "worker 0 never reached step 3:\n\(log)")
        for _ in 0..<4 { #expect(finished.wait(timeout: .now() + 30) == .success, "a worker thread did not finish within 30s") }
        #expect(summary.outcome == .trained, "\(log)\n\(warnings.standardError)")
        #expect(log.contains("joined the running job"), "\(log)")
        #expect(log.contains("lost"), "\(log)")
        #expect(!warnings.standardError.contains("ignored weights"), "\(warnings.standardError)")
        let finishedWorkers = outcomes.results.filter { (try? $0.get()) == "training finished" }.count
        #expect(finishedWorkers == 3, "the two survivors and the newcomer finish: \(outcomes.results)")
    }
}

/// A worker thread's index, learnt from its log and read by its gradient hook (same thread).
final class IndexBox: @unchecked Sendable {
    var value: Int?
}
