import Foundation
import RNNCheckpoint
import RNNTrain
import Testing

@Suite("Cluster launchers against real daemons", .serialized)
struct LauncherTests {
    @Test("ssh launcher: coordinator on h1, workers on h2 and h3 over ssh; matches the single-process run")
    func sshLauncherTrainsAcrossHosts() throws {
        guard getuid() == 0 else { Issue.record("needs root (network namespaces, sshd): run the suite as root, as CI does"); return }
        let ref = try EquivalenceTests.reference.get()
        let work = NSTemporaryDirectory() + "rnnlm-ssh-\(UUID().uuidString)"
        let started = Date()
        let r = try run("/bin/bash", [repositoryRoot().appendingPathComponent("cluster/tests/ssh-train.sh").path, labDirectory(), work,
                                      try rnnlmBinary(), "--", "--checkpoint-dir", work + "/ckpt", "--data-dir", sharedDataDirectory()]
                                      + EquivalenceTests.common, timeout: 300)
        print("ssh launcher test: \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("[h1] worker") && r.stdout.contains("[h2:1] worker done: training finished")
                && r.stdout.contains("[h3:1] worker done: training finished"), "\(r.stdout)")
        #expect(r.stdout.contains("authenticated worker key"), "CURVE must be on")
        let ck = try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: work + "/ckpt")))
        var diff = 0.0, scale = 0.0
        for i in ck.parameters.indices {
            diff = max(diff, abs(Double(ck.parameters[i]) - Double(ref.parameters[i]))); scale = max(scale, abs(Double(ref.parameters[i])))
        }
        #expect(ck.extra.step == ref.extra.step)
        #expect(diff / scale <= 1e-5, "ssh-launched run differs from the reference by \(diff / scale)")
    }

    @Test("ssh launcher: SIGTERM stops the coordinator and every remote worker")
    func sshLauncherStopsEverythingOnSIGTERM() throws {
        guard getuid() == 0 else { Issue.record("needs root (network namespaces, sshd): run the suite as root, as CI does"); return }
        let work = NSTemporaryDirectory() + "rnnlm-ssh-\(UUID().uuidString)"
        let r = try run("/bin/bash", [repositoryRoot().appendingPathComponent("cluster/tests/ssh-train.sh").path, labDirectory(), work,
                                      try rnnlmBinary(), "--interrupt-after", "4", "--", "--dataset", "timemachine", "--epochs", "1000",
                                      "--hidden", "32", "--data-dir", sharedDataDirectory(), "--checkpoint-dir", work + "/ckpt"], timeout: 120)
        #expect(r.status != 0, "the interrupted launcher must not report success")
        usleep(500_000)
        // This run's processes (other suites may run their own workers meanwhile): their command lines name
        // this test's folder (the workers' keys, the coordinator's checkpoints).
        let left = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap(Int32.init).filter { pid in
            guard let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8), cmd.contains("rnnlm"),
                  cmd.contains(work), !cmd.contains("ssh-train.sh"),
                  let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
            return stat.split(separator: ")").last?.split(separator: " ").first != "Z"
        }
        #expect(left.isEmpty, "rnnlm processes left running after the launcher was stopped: \(left)")
    }

    @Test("Kubernetes manifests validate against the schema, and every flag in them exists")
    func kubernetesManifests() throws {
        let manifest = repositoryRoot().appendingPathComponent("cluster/k8s/rnnlm.yaml").path
        let work = NSTemporaryDirectory() + "rnnlm-k8s"
        let r = try run("/bin/bash", [labDirectory() + "/k8s-validate.sh", work, manifest], timeout: 300)
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        for resource in ["persistentvolumeclaim/rnnlm-checkpoints", "service/rnnlm-coordinator", "job/rnnlm-coordinator", "job/rnnlm-workers"] {
            #expect((r.stdout + r.stderr).contains("passed for resource \(resource)"), "\(resource) not validated")
        }
        let text = try String(contentsOfFile: manifest, encoding: .utf8)
        let jobs = text.components(separatedBy: "kind: Job")
        #expect(jobs.count == 3)
        for job in jobs.dropFirst() {
            #expect(job.contains("imagePullPolicy: IfNotPresent"), "a Job without imagePullPolicy: IfNotPresent")
            #expect(job.contains("podFailurePolicy:") && job.contains("action: Ignore") && job.contains("type: DisruptionTarget"),
                    "evictions must not count against backoffLimit")
        }
        let workers = try #require(jobs.last)
        #expect(workers.contains("name: rnnlm-workers"))
        #expect(!workers.contains("coordinator.secret") && workers.contains("key: worker.secret"),
                "workers must mount only their own key and the coordinator's public key")
        let bin = try rnnlmBinary()
        let help = try run(bin, ["coordinator", "--help"]).stdout + (try run(bin, ["worker", "--help"]).stdout)
        let flags = Set(text.split(separator: "\n").compactMap { line -> String? in
            let t = line.trimmingCharacters(in: .whitespaces)
            guard t.hasPrefix("- --") else { return nil }
            return String(t.dropFirst(2).split(separator: "=").first!)
        })
        #expect(flags.count >= 15)
        for f in flags { #expect(help.contains(f + " ") || help.contains(f + "\n"), "\(f) in rnnlm.yaml is not an rnnlm flag") }
    }

    func slurm(_ mode: String, _ flags: [String], work: String) throws -> ProcessResult {
        try run("/bin/bash", [repositoryRoot().appendingPathComponent("cluster/tests/slurm-train.sh").path, labDirectory(), work,
                              try rnnlmBinary(), mode, "--"] + flags + ["--data-dir", sharedDataDirectory()], timeout: 420)
    }

    @Test("Slurm, three nodes in namespaces: task 0 coordinates on h1, workers on h2 and h3; matches the reference")
    func slurmThreeNodes() throws {
        guard getuid() == 0 else { Issue.record("needs root (Slurm daemons): run the suite as root, as CI does"); return }
        let ref = try EquivalenceTests.reference.get()
        let work = NSTemporaryDirectory() + "rnnlm-slurm3-\(UUID().uuidString)"
        let r = try slurm("three", EquivalenceTests.common + ["--checkpoint-dir", work + "/ck"], work: work)
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        // The port is the job's own (20000 + job ID mod 20000), so jobs sharing a node do not collide.
        let port = r.stdout.range(of: #"coordinator on h1:(\d+)"#, options: .regularExpression).map { r.stdout[$0].split(separator: ":").last.map { Int($0) ?? 0 } ?? 0 } ?? 0
        #expect((20000..<40000).contains(port) && r.stdout.contains("on h2, pid") && r.stdout.contains("on h3, pid"), "\(r.stdout)")
        let ck = try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: work + "/ck")))
        var diff = 0.0, scale = 0.0
        for i in ck.parameters.indices {
            diff = max(diff, abs(Double(ck.parameters[i]) - Double(ref.parameters[i]))); scale = max(scale, abs(Double(ref.parameters[i])))
        }
        #expect(diff / scale <= 1e-5, "Slurm run differs from the reference by \(diff / scale)")
        print(r.stdout.split(separator: "\n").filter { $0.hasPrefix("slurm-train:") }.joined(separator: "; "))
    }

    @Test("Slurm, one node: a job finishes with a checkpoint; a cancelled job resubmitted resumes from its checkpoint")
    func slurmSingleNodeAndResubmit() throws {
        guard getuid() == 0 else { Issue.record("needs root (Slurm daemons): run the suite as root, as CI does"); return }
        let work = NSTemporaryDirectory() + "rnnlm-slurm1-\(UUID().uuidString)"
        let single = try slurm("single", ["--dataset", "timemachine", "--max-tokens", "6000", "--hidden", "32", "--epochs", "3",
                                          "--checkpoint-dir", work + "/ck"], work: work)
        #expect(single.status == 0, "\(single.stdout)\n\(single.stderr)")
        #expect(latestCheckpoint(in: work + "/ck") != nil)
        let work2 = work + "-requeue"
        let requeue = try slurm("requeue", ["--dataset", "timemachine", "--max-tokens", "20000", "--hidden", "64", "--epochs", "30",
                                            "--checkpoint-every", "20", "--checkpoint-dir", work2 + "/ck"], work: work2)
        #expect(requeue.status == 0, "\(requeue.stdout)\n\(requeue.stderr)")
        #expect(requeue.stdout.contains("interrupted: saved"), "the cancelled job must checkpoint on SIGTERM: \(requeue.stdout)")
        #expect(requeue.stdout.contains("resuming \(work2)/ck/step-"), "\(requeue.stdout)")
        #expect(requeue.stdout.contains("done: 30 epochs"))
        print(single.stdout.split(separator: "\n").filter { $0.hasPrefix("slurm-train:") }.joined(separator: "; "))
        print(requeue.stdout.split(separator: "\n").filter { $0.hasPrefix("slurm-train:") }.joined(separator: "; "))
    }

    @Test("Slurm, one node: SIGUSR1 to the batch shell (--signal=B:USR1@120) checkpoints, exits 138, requeues and resumes")
    func slurmUSR1Requeues() throws {
        guard getuid() == 0 else { Issue.record("needs root (Slurm daemons): run the suite as root, as CI does"); return }
        let work = NSTemporaryDirectory() + "rnnlm-slurm-usr1-\(UUID().uuidString)"
        let r = try slurm("usr1", ["--dataset", "timemachine", "--max-tokens", "20000", "--hidden", "64", "--epochs", "30",
                                   "--checkpoint-every", "20", "--checkpoint-dir", work + "/ck"], work: work)
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("exiting with status 138 so the job can be requeued"), "\(r.stdout)")
        #expect(r.stdout.contains("requeueing job") && r.stdout.contains("(restart 1)"), "\(r.stdout)")
        #expect(r.stdout.contains("resuming \(work)/ck/step-") && r.stdout.contains("done: 30 epochs"), "\(r.stdout)")
    }
}
