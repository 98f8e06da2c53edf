import RNNCore
import RNNDistributed
import Testing

@Suite("rnnlm launch: the launcher's environment")
struct LaunchEnvironmentTests {
    /// No scontrol: the node list is parsed here.
    let noScontrol: (String) -> [String]? = { _ in nil }

    func error(_ env: [String: String], port: Int? = nil) -> String {
        do {
            _ = try LaunchEnvironment(environment: env, port: port, hostnames: noScontrol)
            return ""
        } catch { return error.description }
    }

    @Test("torchrun / PyTorchJob: rank 0 coordinates on MASTER_ADDR:MASTER_PORT, the others connect there")
    func torchrun() throws {
        let base = ["WORLD_SIZE": "3", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"]
        let zero = try LaunchEnvironment(environment: base.merging(["RANK": "0"]) { $1 }, hostnames: noScontrol)
        #expect(zero.launcher == .torchrun && zero.isCoordinator && zero.workerCount == 2 && zero.port == 29500)
        #expect(zero.bindEndpoint == "tcp://127.0.0.1:29500", "a loopback coordinator binds loopback (no keys needed)")
        let two = try LaunchEnvironment(environment: base.merging(["RANK": "2"]) { $1 }, hostnames: noScontrol)
        #expect(!two.isCoordinator && two.rank == 2 && two.connectEndpoint == "tcp://127.0.0.1:29500")
        #expect(two.origin == "RANK=2 WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 MASTER_PORT=29500")
        // A PyTorchJob's MASTER_ADDR is a Service name: the coordinator listens on every interface.
        let pod = try LaunchEnvironment(environment: ["RANK": "0", "WORLD_SIZE": "4", "MASTER_ADDR": "job-master-0", "MASTER_PORT": "23456"])
        #expect(pod.bindEndpoint == "tcp://*:23456" && pod.connectEndpoint == "tcp://job-master-0:23456")
        let v6 = try LaunchEnvironment(environment: ["RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "fd00::5", "MASTER_PORT": "1"])
        #expect(v6.connectEndpoint == "tcp://[fd00::5]:1")
        // torchrun's agent holds MASTER_PORT for its own store.
        let agent = try LaunchEnvironment(environment: base.merging(["RANK": "1", "TORCHELASTIC_USE_AGENT_STORE": "True"]) { $1 })
        #expect(agent.port == 29501)
        #expect(try LaunchEnvironment(environment: base.merging(["RANK": "1"]) { $1 }, port: 7000).port == 7000)
    }

    @Test("Slurm: SLURM_PROCID, SLURM_NTASKS, the first host of the node list; MASTER_ADDR/MASTER_PORT when set")
    func slurm() throws {
        let env = ["SLURM_PROCID": "1", "SLURM_NTASKS": "4", "SLURM_JOB_NODELIST": "node[07-09,12],gpu1"]
        let parsed = try LaunchEnvironment(environment: env, hostnames: noScontrol)
        #expect(parsed.launcher == .slurm && parsed.rank == 1 && parsed.worldSize == 4)
        #expect(parsed.connectEndpoint == "tcp://node07:5555", "the default port, as train.sbatch")
        let viaScontrol = try LaunchEnvironment(environment: env, hostnames: { list in
            list == "node[07-09,12],gpu1" ? ["node07", "node08"] : nil
        })
        #expect(viaScontrol.coordinatorHost == "node07")
        let scontrolFirst = try LaunchEnvironment(environment: env, hostnames: { _ in ["other"] })
        #expect(scontrolFirst.coordinatorHost == "other", "scontrol's answer wins over the parser")
        let set = try LaunchEnvironment(environment: env.merging(["MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "6000"]) { $1 })
        #expect(set.connectEndpoint == "tcp://10.0.0.5:6000")
        let old = try LaunchEnvironment(environment: ["SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_NODELIST": "h1"], hostnames: noScontrol)
        #expect(old.coordinatorHost == "h1" && old.bindEndpoint == "tcp://*:5555")
        // A step on other nodes than the job's first (srun -w node09): its task 0 runs on the step's first node.
        let step = try LaunchEnvironment(environment: env.merging(["SLURM_STEP_NODELIST": "node[09,12]"]) { $1 }, hostnames: noScontrol)
        #expect(step.coordinatorHost == "node09", "\(step.coordinatorHost)")
        // localhost: libzmq binds addresses, not names.
        let local = try LaunchEnvironment(environment: ["RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "localhost", "MASTER_PORT": "7000"])
        #expect(local.bindEndpoint == "tcp://127.0.0.1:7000" && local.connectEndpoint == "tcp://localhost:7000")
        #expect(CoordinatorSettings.isLoopback("tcp://[::1]:5555") && !CoordinatorSettings.isLoopback("tcp://[::2]:5555")
                && CoordinatorSettings.isLoopback("tcp://127.0.0.1:5555") && !CoordinatorSettings.isLoopback("tcp://*:5555"))
        // torchrun inside a Slurm allocation: torchrun's variables describe this process.
        let both = try LaunchEnvironment(environment: env.merging(["RANK": "5", "WORLD_SIZE": "8", "MASTER_ADDR": "a", "MASTER_PORT": "9"]) { $1 })
        #expect(both.launcher == .torchrun && both.rank == 5 && both.worldSize == 8)
    }

    @Test("node lists without scontrol", arguments: [
        ("h1", "h1"), ("h1,h2", "h1"), ("h[1-3]", "h1"), ("node[07-09,12],gpu1", "node07"), ("gpu[3,1]", "gpu3"),
        ("rack[1-2]-n[3-4]", "rack1-n3"), ("a-[01-02]-ib", "a-01-ib"), (" h9 ", "h9")])
    func nodeLists(list: String, first: String) {
        #expect(LaunchEnvironment.firstHost(ofNodeList: list) == first)
    }

    @Test("missing or inconsistent variables are named")
    func errors() {
        #expect(error([:]).contains("none is set: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT"))
        #expect(error(["RANK": "1", "WORLD_SIZE": "3"]) == "the launcher set RANK, WORLD_SIZE but not MASTER_ADDR, MASTER_PORT; rnnlm launch needs all of RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (torchrun, Kubeflow PyTorchJob)")
        #expect(error(["RANK": "1", "WORLD_SIZE": "3", "MASTER_ADDR": "h"], port: 5000) == "", "--port stands in for MASTER_PORT")
        let t = ["WORLD_SIZE": "3", "MASTER_ADDR": "h", "MASTER_PORT": "5555"]
        #expect(error(t.merging(["RANK": "3"]) { $1 }) == "RANK=3 is outside 0..<WORLD_SIZE (3)")
        #expect(error(t.merging(["RANK": "-1"]) { $1 }) == "RANK=-1 is outside 0..<WORLD_SIZE (3)")
        #expect(error(t.merging(["RANK": "one"]) { $1 }) == "RANK=one is not a whole number")
        #expect(error(t.merging(["RANK": "0", "WORLD_SIZE": "1"]) { $1 }).hasPrefix("WORLD_SIZE=1: rnnlm launch needs at least 2 processes"))
        #expect(error(t.merging(["RANK": "0", "MASTER_PORT": "http"]) { $1 }) == "MASTER_PORT=http is not a port number")
        #expect(error(t.merging(["RANK": "0", "MASTER_PORT": "70000"]) { $1 }).hasPrefix("the coordinator's port must be between 1 and 65535"))
        #expect(error(["SLURM_PROCID": "0"]).hasPrefix("SLURM_PROCID is set but SLURM_NTASKS is not"))
        #expect(error(["SLURM_PROCID": "0", "SLURM_NTASKS": "3"]).hasPrefix("SLURM_PROCID is set but neither SLURM_STEP_NODELIST, SLURM_JOB_NODELIST nor MASTER_ADDR"))
        #expect(error(["SLURM_PROCID": "4", "SLURM_NTASKS": "3", "SLURM_JOB_NODELIST": "h1"]) == "SLURM_PROCID=4 is outside 0..<SLURM_NTASKS (3)")
        #expect(error(["SLURM_PROCID": "0", "SLURM_NTASKS": "3", "SLURM_JOB_NODELIST": "[]"]) == "SLURM_JOB_NODELIST=[] names no host")
    }
}
