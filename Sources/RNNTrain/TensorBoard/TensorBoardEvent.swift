/// The `tensorflow.Event` messages an event file holds, encoded by hand. Field numbers are those of TensorFlow's
/// `event.proto` (Event), `summary.proto` (Summary, Summary.Value, SummaryMetadata), `tensor.proto` and `types.proto`.
public enum TensorBoardEvent {
    /// The first event of every file: names the format version, `brain.Event:2`.
    public static func fileVersion(wallTime: Double) -> [UInt8] {
        var e = ProtobufWriter()
        e.double(1, wallTime)             // Event.wall_time
        e.string(3, "brain.Event:2")      // Event.file_version
        return e.bytes
    }

    /// A (re)start of the run at optimizer step `step` (`Event.session_log`, `SessionLog.START`): TensorBoard drops
    /// what the run's earlier event files logged at `step` and after, so a resumed run's curves do not double back
    /// over the steps its stopped predecessor logged past the checkpoint.
    public static func sessionStart(step: Int, wallTime: Double) -> [UInt8] {
        var e = ProtobufWriter()
        e.double(1, wallTime)                        // Event.wall_time
        e.int64(2, Int64(step))                      // Event.step
        e.message(7) { log in log.int64(1, 1) }      // Event.session_log: SessionLog.status = START
        return e.bytes
    }

    /// One event holding a scalar per tag (`Summary.Value.simple_value`, a float) at optimizer step `step`.
    public static func scalars(_ values: [(tag: String, value: Float)], step: Int, wallTime: Double) -> [UInt8] {
        event(step: step, wallTime: wallTime) { summary in
            for (tag, value) in values {
                summary.message(1) { v in      // Summary.value
                    v.string(1, tag)           // Value.tag
                    v.float(2, value)          // Value.simple_value
                }
            }
        }
    }

    /// One event holding `text` (Markdown) for TensorBoard's text plugin: a scalar string tensor whose metadata names
    /// the plugin.
    public static func text(tag: String, _ text: String, step: Int, wallTime: Double) -> [UInt8] {
        event(step: step, wallTime: wallTime) { summary in
            summary.message(1) { v in                    // Summary.value
                v.string(1, tag)                         // Value.tag
                v.message(9) { m in                      // Value.metadata: SummaryMetadata
                    m.message(1) { p in p.string(1, "text") }   // plugin_data.plugin_name
                    m.int64(4, 2)                        // data_class: DATA_CLASS_TENSOR
                }
                v.message(8) { t in                      // Value.tensor: TensorProto
                    t.int64(1, 7)                        // dtype: DT_STRING
                    t.message(2) { _ in }                // tensor_shape: a scalar (no dimensions)
                    t.string(8, text)                    // string_val
                }
            }
        }
    }

    static func event(step: Int, wallTime: Double, summary: (inout ProtobufWriter) -> Void) -> [UInt8] {
        var e = ProtobufWriter()
        e.double(1, wallTime)           // Event.wall_time
        e.int64(2, Int64(step))         // Event.step
        e.message(5, summary)           // Event.summary
        return e.bytes
    }
}
