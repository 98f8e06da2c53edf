import Foundation

/// A TensorBoard event file, `events.out.tfevents.<unix seconds>.<host>`, in a folder (`tensorboard --logdir` on the
/// folder shows it). The file starts with the format-version event; each later event is one TFRecord appended with one
/// `write(2)`, so a crash keeps everything written before it.
public final class EventFileWriter {
    public let path: String
    private let handle: FileHandle

    /// Creates the file in `directory` (appends to it if a run in the same second on the same host made one).
    public init(directory: String, wallTime: Double = Date().timeIntervalSince1970, host: String = EventFileWriter.hostName) throws {
        path = directory + "/events.out.tfevents.\(Int(wallTime)).\(host)"
        let fresh = !FileManager.default.fileExists(atPath: path)
        if fresh, !FileManager.default.createFile(atPath: path, contents: nil) {
            throw TrainingError("cannot create the TensorBoard event file \(path)")
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw TrainingError("cannot open the TensorBoard event file \(path)") }
        h.seekToEndOfFile()
        handle = h
        if fresh { write(TensorBoardEvent.fileVersion(wallTime: wallTime)) }
    }

    deinit { try? handle.close() }

    /// Set once a write failed (a full disk): later events are dropped, with one warning, and training goes on.
    private var failed = false

    /// Appends one encoded `Event` message.
    public func write(_ event: [UInt8]) {
        guard !failed else { return }
        do { try handle.write(contentsOf: Data(TFRecord.frame(event))) } catch {
            failed = true
            FileHandle.standardError.write(Data("warning: cannot write the TensorBoard event file \(path) (\(error.localizedDescription)); events stop here, training goes on\n".utf8))
        }
    }

    /// Appends one event with a scalar per tag.
    public func scalars(_ values: [(tag: String, value: Float)], step: Int, wallTime: Double) {
        guard !values.isEmpty else { return }
        write(TensorBoardEvent.scalars(values, step: step, wallTime: wallTime))
    }

    /// Appends one text event (Markdown).
    public func text(tag: String, _ text: String, step: Int, wallTime: Double) {
        write(TensorBoardEvent.text(tag: tag, text, step: step, wallTime: wallTime))
    }

    /// This machine's name, as TensorFlow's writers put it in the file name.
    public static var hostName: String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "localhost" }
        let host = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return host.isEmpty ? "localhost" : host
    }
}
