// swift-tools-version:6.1
import PackageDescription

/// Hot numeric loops are compiled for the Haswell level (AVX2, FMA; every x86-64 server CPU since 2013) when building on x86-64, because
/// Swift's SIMD types otherwise lower fused multiply-adds to a libm call per lane.
/// Set `RNNLM_PORTABLE=1` in the environment when building for older x86-64 CPUs.
let portable = Context.environment["RNNLM_PORTABLE"] == "1"
#if arch(x86_64)
let cpuFlags: [SwiftSetting] = portable ? [] : [.unsafeFlags(["-target-cpu", "haswell"])]
let kernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-ffp-contract=fast", "-fno-math-errno"] + (portable ? [] : ["-mavx2", "-mfma"]))]
#else
let cpuFlags: [SwiftSetting] = []
let kernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-ffp-contract=fast", "-fno-math-errno"])]
#endif

let package = Package(
    name: "rnnlm",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "rnnlm", targets: ["rnnlm"]),
        .library(name: "RNNCore", targets: ["RNNCore"]),
        .library(name: "RNNTrain", targets: ["RNNTrain"]),
        .library(name: "RNNText", targets: ["RNNText"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(
            name: "CZeroMQ",
            providers: [.apt(["libzmq3-dev"])]),
        // Small C wrappers for Linux calls Swift cannot make directly (variadic prctl, mallopt, mmap of a file,
        // the atomic counters of shared-memory slots).
        .target(name: "CLinux"),
        // The elementwise hot loops (gates, loss, reductions) in C, which clang vectorises reliably.
        .target(name: "CKernels", cSettings: kernelFlags),
        // Numbers only: tensors, cells, forward/backward, loss, optimizers, clipping, sampling. No I/O.
        .target(name: "RNNCore", dependencies: ["CBLAS", "CKernels"], swiftSettings: cpuFlags),
        // Text: tokenizers, vocabulary, corpora and datasets, truncated-BPTT batching. Resources: The Time Machine
        // (public domain; D2L's timemachine.txt, SHA-1 090b5e7e…), so `--dataset timemachine` trains offline.
        .target(name: "RNNText", resources: [.copy("Resources/timemachine.txt")]),
        // safetensors checkpoints (atomic writes, strict reads).
        .target(name: "RNNCheckpoint", dependencies: ["RNNCore"]),
        // Wire messages, their strict validation, and the coordinator's state machine; no sockets, no clock.
        .target(name: "RNNProtocol", dependencies: ["RNNCore"]),
        // The only code that touches libzmq.
        .target(name: "RNNTransport", dependencies: ["CZeroMQ", "CLinux"]),
        // The single-process reference trainer, evaluation and generation.
        .target(name: "RNNTrain", dependencies: ["RNNCore", "RNNText", "RNNCheckpoint"], swiftSettings: cpuFlags),
        // Coordinator (a GradientSource for the reference trainer) and worker loop over the transport.
        .target(name: "RNNDistributed", dependencies: ["RNNTrain", "RNNProtocol", "RNNTransport", "CLinux"]),
        .executableTarget(
            name: "rnnlm",
            dependencies: [
                "RNNTrain", "RNNTransport", "RNNDistributed", "RNNProtocol", "CLinux",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "RNNCoreTests", dependencies: ["RNNCore", "CKernels"], resources: [.copy("Fixtures")],
                    swiftSettings: cpuFlags),
        .testTarget(name: "RNNTextTests", dependencies: ["RNNText"], resources: [.copy("Fixtures")]),
        .testTarget(name: "RNNProtocolTests", dependencies: ["RNNProtocol", "RNNCore"]),
        .testTarget(name: "RNNTrainTests", dependencies: ["RNNTrain", "RNNCheckpoint", "RNNTransport", "RNNDistributed", "RNNProtocol"],
                    resources: [.copy("Fixtures")]),
    ],
    swiftLanguageModes: [.v6]
)
