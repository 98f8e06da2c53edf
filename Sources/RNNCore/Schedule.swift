/// Learning-rate schedules, evaluated at epoch boundaries.
public enum ScheduleKind: Equatable, Sendable, Codable {
    /// The same rate throughout.
    case constant
    /// Multiply by `factor` after epoch `start`, then every `every` epochs.
    case step(start: Int, every: Int, factor: Float)
    /// Multiply by `factor` when validation loss has not improved for `patience` epochs
    /// (by more than a relative 1e-4, as PyTorch's ReduceLROnPlateau), never below `minLR`.
    case plateau(factor: Float, patience: Int, minLR: Float)
}

/// The learning rate as training goes. Codable so a resumed run continues the same schedule.
public struct LearningRateSchedule: Equatable, Sendable, Codable {
    public let kind: ScheduleKind
    public let baseLR: Float
    public private(set) var lr: Float
    public private(set) var bestLoss: Double?
    public private(set) var badEpochs: Int = 0

    public init(_ kind: ScheduleKind, lr: Float) {
        self.kind = kind
        baseLR = lr
        self.lr = lr
    }

    /// Call once after each completed epoch (1-based `epoch`), with its validation loss if there is one
    /// (plateau falls back to the training loss). Returns the rate for the next epoch.
    @discardableResult
    public mutating func endEpoch(_ epoch: Int, validationLoss: Double?) -> Float {
        switch kind {
        case .constant:
            break
        case .step(let start, let every, let factor):
            if epoch >= start, every > 0, (epoch - start) % every == 0 { lr *= factor }
        case .plateau(let factor, let patience, let minLR):
            guard let loss = validationLoss, loss.isFinite else { break }
            if let best = bestLoss, loss >= best * (1 - 1e-4) {
                badEpochs += 1
                if badEpochs > patience {
                    lr = max(minLR, lr * factor)
                    badEpochs = 0
                }
            } else {
                bestLoss = loss
                badEpochs = 0
            }
        }
        return lr
    }
}
