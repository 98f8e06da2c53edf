import Foundation

/// A problem with input text, worded for the user: what is wrong and what to do.
public struct CorpusError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ message: String) { description = message }
}

/// The bytes of the file at `path`, read to its end: a regular file, or a pipe such as `--corpus <(zcat x.gz)`,
/// which has no size to read up front (Foundation's `contents(atPath:)` gives up on one).
public func readWholeFile(_ path: String) throws -> Data {
    let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
    defer { try? handle.close() }
    return try handle.readToEnd() ?? Data()
}

/// Reads a UTF-8 text file, refusing what cannot be a corpus (missing, empty, binary, not UTF-8); `flag` is the
/// option that named it, for the message.
public func readCorpus(_ path: String, flag: String = "--corpus") throws(CorpusError) -> String {
    let pairs = flag == "--pairs"
    let what = pairs ? "pairs file" : "corpus"
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        throw CorpusError("\(what) \(path): no such file (check the path given to \(flag))")
    }
    guard !isDir.boolValue else { throw CorpusError("\(what) \(path) is a directory; give the path of a text file") }
    let data: Data
    do { data = try readWholeFile(path) } catch {
        throw CorpusError("\(what) \(path) cannot be read: \(error.localizedDescription)")
    }
    guard !data.isEmpty else {
        throw CorpusError(pairs ? "pairs file \(path) is empty; give UTF-8 lines of `source<TAB>target` sentence pairs"
                                : "corpus \(path) is empty; give a UTF-8 text file with at least a few thousand characters")
    }
    if data.withUnsafeBytes({ memchr($0.baseAddress!, 0, $0.count) != nil }) {
        throw CorpusError("\(what) \(path) looks binary (it contains NUL bytes); give a UTF-8 text file")
    }
    guard let text = String(data: data, encoding: .utf8) else {
        throw CorpusError("\(what) \(path) is not valid UTF-8; convert it first (e.g. iconv -f latin1 -t utf-8)")
    }
    return universalNewlines(text)
}

/// `text` with Windows (`\r\n`) and old Mac (`\r`) line ends turned into `\n`, as Python's `open()` reads text (so
/// D2L and word_language_model see the same lines): otherwise a CRLF file is one line to the `lines` tokenizer,
/// since Swift counts `\r\n` as one Character.
public func universalNewlines(_ text: String) -> String {
    guard text.utf8.contains(13) else { return text }
    return text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
}

/// A corpus rnnlm knows by name, with where to download it and its SHA-1 (as D2L's `DATA_HUB`).
public struct NamedDataset: Sendable {
    public let name: String
    public let fileName: String
    public let url: String
    public let sha1: String
    public let defaultTokenizer: TokenizerKind
    /// Whether a copy ships inside the package (`embeddedPath`), used when no folder or cache holds the file.
    public var isEmbedded: Bool { name == "timemachine" }

    public init(name: String, fileName: String, url: String, sha1: String, defaultTokenizer: TokenizerKind) {
        self.name = name
        self.fileName = fileName
        self.url = url
        self.sha1 = sha1
        self.defaultTokenizer = defaultTokenizer
    }

    public static let all: [NamedDataset] = [
        NamedDataset(name: "timemachine", fileName: "timemachine.txt",
                     url: "http://d2l-data.s3-accelerate.amazonaws.com/timemachine.txt",
                     sha1: "090b5e7e70c295757f55df93cb0a180b9691891a", defaultTokenizer: .char),
        NamedDataset(name: "tinyshakespeare", fileName: "tinyshakespeare.txt",
                     url: "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                     sha1: "04486597058d11dcc2c556b1d0433891eb639d2e", defaultTokenizer: .charRaw),
        // D2L's English-French pairs (Tatoeba via manythings.org/anki, CC-BY 2.0): a zip holding fra-eng/fra.txt.
        NamedDataset(name: "fra-eng", fileName: "fra-eng/fra.txt",
                     url: "http://d2l-data.s3-accelerate.amazonaws.com/fra-eng.zip",
                     sha1: "c43f99dce27311d3afd4d3e0716848194cfcc103", defaultTokenizer: .word),
    ]

    public static func named(_ name: String) throws(CorpusError) -> NamedDataset {
        guard let d = all.first(where: { $0.name == name }) else {
            throw CorpusError("unknown dataset '\(name)'; known: \(all.map(\.name).joined(separator: ", ")) (or use --corpus PATH)")
        }
        return d
    }

    /// The environment variable naming a folder searched first for dataset files.
    public static let dataDirVariable = "RNNLM_DATA_DIR"

    /// The default download cache: `$XDG_CACHE_HOME/rnnlm` or `~/.cache/rnnlm`.
    public static var cacheDirectory: String {
        let env = ProcessInfo.processInfo.environment
        if let x = env["XDG_CACHE_HOME"], !x.isEmpty { return x + "/rnnlm" }
        return (env["HOME"] ?? NSTemporaryDirectory()) + "/.cache/rnnlm"
    }

    /// The name of the resource bundle SwiftPM builds for RNNText, beside the executable (or test bundle).
    static let resourceBundle = "rnnlm_RNNText.resources"

    /// The copy shipped in the package, if this dataset has one and the resource bundle is found: beside the
    /// running executable (where `swift build` puts it; install it beside the binary), or beside the binary a
    /// symbolic link points to. Looked up by hand rather than through `Bundle.module`, which stops the process
    /// when the bundle is missing: a binary copied without it downloads instead.
    public var embeddedPath: String? {
        guard isEmbedded else { return nil }
        var folders = [Bundle.main.bundleURL]
        if let exe = Bundle.main.executableURL {
            folders += [exe.deletingLastPathComponent(), exe.resolvingSymlinksInPath().deletingLastPathComponent()]
        }
        for f in folders {
            let path = f.appendingPathComponent(Self.resourceBundle).appendingPathComponent(fileName).path
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        return nil
    }

    /// Finds the file (in `dataDir`, then `$RNNLM_DATA_DIR`, then `cache`, then the copy shipped in the package),
    /// downloading it into `cache` when it is nowhere; verifies its SHA-1 either way. Returns the path of the
    /// verified file.
    public func locate(dataDir: String?, download: Bool = true, cache: String = cacheDirectory) throws(CorpusError) -> String {
        let env = ProcessInfo.processInfo.environment[Self.dataDirVariable]
        let folders = [dataDir, env, cache].compactMap { $0 }.filter { !$0.isEmpty }
        for folder in folders {
            let path = folder + "/" + fileName
            if FileManager.default.fileExists(atPath: path) {
                try verify(path)
                return path
            }
        }
        if let path = embeddedPath {
            try verify(path)
            return path
        }
        let cachePath = cache + "/" + fileName
        let hint = "put \(fileName) in a folder and pass --data-dir FOLDER (or set \(Self.dataDirVariable)), or download it from \(url) to \(cachePath)"
        guard download else { throw CorpusError("dataset \(name): \(fileName) not found in \(folders.joined(separator: ", ")); \(hint)") }
        let folder = (cachePath as NSString).deletingLastPathComponent
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw CorpusError("dataset \(name): cannot create the cache folder \(folder): \(error.localizedDescription)")
        }
        // A zipped dataset (fra-eng) is downloaded whole and the file taken out of it with `unzip`.
        let zipped = url.hasSuffix(".zip")
        let tmp = zipped ? cache + "/\(name).zip.part" : cachePath + ".part"
        defer { try? FileManager.default.removeItem(atPath: tmp) }
        try run(["curl", "-fsSL", "--max-time", "300", "-o", tmp, url], failure: "downloading \(url) failed (offline?)",
                folders: folders, hint: hint)
        let fetched = zipped ? cachePath + ".part" : tmp
        if zipped {
            try run(["sh", "-c", "unzip -p \"$0\" \"$1\" > \"$2\"", tmp, fileName, fetched],
                    failure: "taking \(fileName) out of \(url) failed (is `unzip` installed?)", folders: folders, hint: hint)
        }
        defer { try? FileManager.default.removeItem(atPath: fetched) }
        try verify(fetched)
        // rename(2) in the cache folder: atomic, and it works when there is no file yet (Foundation's replaceItemAt on
        // Linux requires one).
        guard rename(fetched, cachePath) == 0 else {
            throw CorpusError("dataset \(name): cannot move the download into \(cachePath): \(String(cString: strerror(errno)))")
        }
        return cachePath
    }

    /// Runs a download step; its failure is a `CorpusError` that says what to do instead.
    private func run(_ arguments: [String], failure: String, folders: [String], hint: String) throws(CorpusError) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        p.standardError = FileHandle.nullDevice
        do { try p.run(); p.waitUntilExit() } catch {
            throw CorpusError("dataset \(name): \(fileName) is not in \(folders.joined(separator: ", ")) and \(arguments[0]) could not run to fetch it; \(hint)")
        }
        guard p.terminationStatus == 0 else {
            throw CorpusError("dataset \(name): \(fileName) is not in \(folders.joined(separator: ", ")) and \(failure); \(hint)")
        }
    }

    func verify(_ path: String) throws(CorpusError) {
        guard let data = FileManager.default.contents(atPath: path) else { throw CorpusError("dataset \(name): cannot read \(path)") }
        let got = sha1Hex([UInt8](data))
        guard got == sha1 else {
            throw CorpusError("dataset \(name): \(path) has SHA-1 \(got), expected \(sha1); the file is corrupt or a different version — delete it and fetch \(url) again")
        }
    }
}
