import ArgumentParser
import Foundation
import RNNCore
import RNNDistributed

struct Launch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "One process of a job started by torchrun, a Kubeflow PyTorchJob or srun: rank 0 coordinates, the others are workers.",
        discussion: """
            Every process runs the same command with the same flags. The rank, the number of processes and the \
            coordinator's address come from the launcher's environment: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT \
            (torchrun, PyTorchJob), or SLURM_PROCID, SLURM_NTASKS and the first host of SLURM_STEP_NODELIST, else SLURM_JOB_NODELIST (srun; \
            MASTER_ADDR and MASTER_PORT win when the job sets them, the port is otherwise 5555). Rank 0 runs \
            `rnnlm coordinator --expect-workers WORLD_SIZE-1` with the training flags; the others run `rnnlm worker`, \
            which takes the run's settings from rank 0 (their own training flags are checked, not compared).
            A coordinator on a non-loopback address needs CURVE keys (rank 0 uses --curve-secret and \
            --authorized-keys, the others --curve-server-key and --curve-key; pass all four to every rank) or --insecure.
              srun -n 3 rnnlm launch --dataset timemachine --checkpoint-dir /shared/runs/x --resume \\
                  --curve-secret keys/coordinator.secret --authorized-keys keys/authorized \\
                  --curve-server-key keys/coordinator.public --curve-key keys/worker.secret
            """)

    @Option(help: "The coordinator's port, instead of MASTER_PORT (under Slurm without MASTER_PORT: 5555).")
    var port: Int?
    @Option(help: "Seconds the coordinator waits for the workers to join, and a worker for the coordinator to answer.")
    var joinTimeout: Double = 300
    @Option(help: "Seconds to wait for every worker's gradient in one step before giving up.")
    var stepTimeout: Double = 600
    @Option(help: "Workers: seconds to keep trying to rejoin a coordinator restarted with --resume.")
    var rejoinGrace: Double = 60
    @OptionGroup var coordinatorCurve: CoordinatorCurveFlags
    @OptionGroup var workerCurve: WorkerCurveFlags
    @OptionGroup var distributedFlags: DistributedFlags
    @OptionGroup var flags: TrainFlags
    @Flag(help: "Continue from the newest checkpoint in --checkpoint-dir (starts a new run if there is none).")
    var resume = false

    func run() throws {
        try runReportingErrors {
            let env = try LaunchEnvironment(environment: ProcessInfo.processInfo.environment, port: port)
            if env.isCoordinator { try coordinate(env) } else { try work(env) }
        }
    }

    func say(_ line: String) { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }

    func coordinate(_ env: LaunchEnvironment) throws {
        let bind = env.bindEndpoint
        try coordinatorCurve.requireAuthentication(bind: bind)
        var c = distributedFlags.coordinator(bind: bind, expectWorkers: env.workerCount, joinTimeout: joinTimeout,
                                             stepTimeout: stepTimeout)
        try flags.validate(resume: resume, coordinator: c)
        say("launch: \(env.launcher.rawValue) rank 0 of \(env.worldSize) (\(env.origin)): coordinator on \(bind) for \(env.workerCount) worker(s)")
        try coordinatorCurve.apply(to: &c)
        let lines = ["join-timeout = \(joinTimeout)", "step-timeout = \(stepTimeout)"] + coordinatorCurve.tomlLines
            + distributedFlags.tomlLines
        try finish(try TrainingRun(settings: flags.runSettings(resume: resume, coordinator: c, command: "launch",
                                                               commandLines: lines)).run())
    }

    func work(_ env: LaunchEnvironment) throws {
        let endpoint = env.connectEndpoint
        // The same rule as the coordinator's, so a worker says why before waiting for a coordinator that refused
        // to start.
        if !CoordinatorSettings.isLoopback(endpoint) && workerCurve.curveKey == nil && !coordinatorCurve.insecure {
            throw ConfigError("the coordinator at \(endpoint) is not on loopback: pass --curve-server-key and --curve-key (rank 0: --curve-secret and --authorized-keys), or --insecure on a trusted network")
        }
        // Every rank is given the same flags; a worker rank takes the run's settings from rank 0, but a bad flag
        // stops it too, rather than leaving it to wait for a coordinator that refused to start.
        try flags.validateWithoutFiles(resume: resume)
        try distributedFlags.coordinator(bind: "", expectWorkers: env.workerCount, joinTimeout: joinTimeout,
                                         stepTimeout: stepTimeout).validate()
        var s = WorkerRun.Settings(endpoint: endpoint, name: env.workerName(host: ProcessInfo.processInfo.hostName))
        s.joinTimeout = joinTimeout
        s.rejoinGrace = rejoinGrace
        s.threads = flags.threads
        s.quiet = flags.quiet
        try s.validate()
        s.curve = try workerCurve.keys()
        if !flags.quiet {
            say("launch: \(env.launcher.rawValue) rank \(env.rank) of \(env.worldSize) (\(env.origin)): worker connecting to \(endpoint)")
        }
        let outcome = try WorkerRun(settings: s).run()
        if outcome.exitCode != 0 { throw ExitCode(outcome.exitCode) }
    }
}
