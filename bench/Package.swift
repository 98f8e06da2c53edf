// swift-tools-version:6.1
// Benchmarks, kept out of the main package so CI's build and test stay lean. Run through bench/run.sh.
import PackageDescription

let package = Package(
    name: "rnnlm-bench",
    dependencies: [.package(name: "rnnlm", path: "..")],
    targets: [
        .executableTarget(
            name: "rnnlm-bench",
            dependencies: ["CPeak", .product(name: "RNNCore", package: "rnnlm"), .product(name: "RNNTrain", package: "rnnlm")]),
        // The core's fp32 FMA peak (registers only), the ceiling FLOP limits are put against (rnnlm-bench --gemm).
        .target(name: "CPeak"),
        // Times BPE learning and encoding (bench/bpe.sh).
        .executableTarget(name: "bpe-bench", dependencies: [.product(name: "RNNText", package: "rnnlm")]),
    ],
    swiftLanguageModes: [.v6]
)
