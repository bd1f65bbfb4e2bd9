/// When a run grows and what learning rate it trains at: the schedule of growth points over the epochs, and
/// the cosine decay of the learning rate.
module TinyGrow.Core.Schedule

open System
open TinyGrow.Abstractions

/// Growth points of an epoch: batch indices evenly spaced, the first at the epoch's start.
let growthBatches (growth: GrowthOptions) (epoch: int) (batchesPerEpoch: int) : Set<int> =
    if growth.StepsPerEpoch <= 0 || epoch > growth.UntilEpoch then Set.empty
    else set [ for k in 0 .. growth.StepsPerEpoch - 1 -> k * batchesPerEpoch / growth.StepsPerEpoch ]

/// Cosine decay from lr0 to 0 over the run.
let learningRate (training: TrainingOptions) (step: int64) (totalSteps: int64) =
    if training.CosineSchedule then
        training.LearningRate * 0.5 * (1.0 + cos (Math.PI * float step / float (max 1L totalSteps)))
    else training.LearningRate
