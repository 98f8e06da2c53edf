import RNNText

/// Where a model family is registered: how a worker rebuilds a task from the description the coordinator sends.
/// A new family adds one line to `task(kind:description:)`.
public enum TaskRegistry {
    /// The task a worker computes for, rebuilt from the coordinator's `workerDescription()`.
    public static func task(kind: String, description: [UInt8]) throws -> any TrainingTask {
        switch kind {
        case LanguageModelTask.kind: return try LanguageModelTask(workerDescription: description)
        case TranslationTask.kind: return try TranslationTask(workerDescription: description)
        default: throw TrainingError("the coordinator runs a \(kind) task, which this rnnlm does not know; run the same rnnlm version on coordinator and workers")
        }
    }
}

extension TaskRegistry {
    /// A fresh task for a run's options: reads and tokenizes its data, initialises the model from `--seed`.
    public static func task(for options: TrainOptions, dataDir: String?) throws -> any TrainingTask {
        if options.translation != nil {
            return try TranslationTask(options: options, data: try translationData(options, dataDir: dataDir))
        }
        return try LanguageModelTask(options: options, data: try TextData.load(options, dataDir: dataDir))
    }

    /// The pairs a translation run names (`--pairs FILE` or `--dataset fra-eng`), read as D2L does.
    static func translationData(_ o: TrainOptions, dataDir: String?, vocabularies: (Vocabulary, Vocabulary)? = nil,
                                fingerprint: String? = nil) throws -> TranslationData {
        let t = o.translation ?? TrainOptions.TranslationOptions()
        let path = try t.pairs ?? NamedDataset.named(o.dataset ?? "fra-eng").locate(dataDir: dataDir)
        return try TranslationData.load(path: path, numExamples: t.numExamples, validExamples: t.validExamples,
                                        steps: o.numSteps, minFreq: t.minFreq, vocabularies: vocabularies, fingerprint: fingerprint)
    }

    /// The task of a run being resumed, rebuilt from its checkpoint record (the data is read again and checked
    /// against the record's fingerprint); `options` are the run's options, possibly with a raised `epochs`.
    public static func task(resuming record: TaskRecord, options: TrainOptions, dataDir: String?) throws -> any TrainingTask {
        switch record.kind {
        case LanguageModelTask.kind:
            let r = try LanguageModelTask.dataRecord(record)
            let data = try TextData.load(options, dataDir: dataDir, existing: (r.tokenizer, r.vocabulary, r.fingerprint))
            return try LanguageModelTask(options: options, data: data)
        case TranslationTask.kind:
            let r = try TranslationTask.dataRecord(record)
            let data = try translationData(options, dataDir: dataDir, vocabularies: (r.sourceVocabulary, r.targetVocabulary),
                                           fingerprint: r.fingerprint)
            return try TranslationTask(options: options, data: data)
        default:
            throw TrainingError("the checkpoint holds a \(record.kind) run, which this rnnlm does not know")
        }
    }
}
