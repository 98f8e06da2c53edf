import ArgumentParser
import Foundation
import RNNCore
import RNNDistributed
import RNNTrain
import RNNTransport

/// A coordinator's CURVE flags (`rnnlm coordinator`, rank 0 of `rnnlm launch`), and the rule that anything listening
/// beyond loopback authenticates its workers unless told `--insecure`.
struct CoordinatorCurveFlags: ParsableArguments {
    @Option(help: "The coordinator's CURVE key pair (a .secret file from `rnnlm keygen`): encrypts the connection and, with --authorized-keys, admits only known workers.")
    var curveSecret: String?
    @Option(help: "Folder of workers' .public key files; only these workers may join (required with --curve-secret).")
    var authorizedKeys: String?
    @Flag(help: "Allow listening on a non-loopback address without CURVE authentication (trusted, isolated networks only).")
    var insecure = false

    func validate() throws {
        switch (curveSecret, authorizedKeys) {
        case (_?, nil): throw ConfigError("--curve-secret needs --authorized-keys FOLDER (the workers' .public files); without it any key would be admitted")
        case (nil, _?): throw ConfigError("--authorized-keys needs --curve-secret (the coordinator's own key pair from `rnnlm keygen`)")
        default: break
        }
    }

    /// The flags given, as `key = value` lines for run.toml (paths to the key files, not the keys).
    var tomlLines: [String] {
        var lines: [String] = []
        if let s = curveSecret { lines.append("curve-secret = \(tomlString(s))") }
        if let a = authorizedKeys { lines.append("authorized-keys = \(tomlString(a))") }
        if insecure { lines.append("insecure = true") }
        return lines
    }

    /// Refuses a non-loopback `bind` without keys, unless `--insecure`.
    func requireAuthentication(bind: String) throws {
        if bind.hasPrefix("tcp://") && !CoordinatorSettings.isLoopback(bind) && curveSecret == nil && !insecure {
            throw ConfigError("refusing to listen on \(bind) without authentication: create keys with `rnnlm keygen` and pass --curve-secret and --authorized-keys, bind to tcp://127.0.0.1:PORT, or pass --insecure on a trusted network")
        }
    }

    /// Reads the keys into `settings` (or warns that `--insecure` lets anyone join).
    func apply(to settings: inout CoordinatorSettings) throws {
        if let s = curveSecret, let a = authorizedKeys {
            settings.curve = (try CurveKeyPair.read(secretFile: s), try CurveKeyPair.authorizedKeys(in: a))
        }
        if insecure && settings.curve == nil {
            FileHandle.standardError.write(Data("warning: --insecure: any peer that can reach \(settings.bind) can join this run\n".utf8))
        }
    }
}

/// A worker's CURVE flags (`rnnlm worker`, ranks above 0 of `rnnlm launch`).
struct WorkerCurveFlags: ParsableArguments {
    @Option(help: "The coordinator's CURVE public key (its .public file, or the 40-character key) when it requires keys.")
    var curveServerKey: String?
    @Option(help: "This worker's CURVE key pair (a .secret file from `rnnlm keygen`); its .public file must be in the coordinator's --authorized-keys.")
    var curveKey: String?

    func validate() throws {
        switch (curveServerKey, curveKey) {
        case (_?, nil): throw ConfigError("--curve-server-key needs --curve-key (this worker's key pair from `rnnlm keygen`, authorised on the coordinator)")
        case (nil, _?): throw ConfigError("--curve-key needs --curve-server-key (the coordinator's .public file)")
        default: break
        }
    }

    /// The coordinator's public key and this worker's key pair, when given.
    func keys() throws -> (serverKey: String, keys: CurveKeyPair)? {
        guard let server = curveServerKey, let key = curveKey else { return nil }
        return (try CurveKeyPair.publicKey(fileOrKey: server), try CurveKeyPair.read(secretFile: key))
    }
}
