/// Where a run is in its schedule: with the tensors (weights, buffers, optimizer state, generator
/// states, the epoch's permutation) it is all a checkpoint needs to continue the run exactly.
namespace TinyGrow.Core

[<CLIMutable>]
type RunState =
    { /// The epoch in progress (1-based); Epochs + 1 once the last one is done.
      mutable Epoch: int
      /// The next batch of the epoch to train (0-based).
      mutable Batch: int
      /// The growth step scheduled before `Batch` (if any) is already done.
      mutable GrownAtBatch: bool
      /// Batches trained in the run (drives the learning-rate schedule).
      mutable Step: int64
      /// Growth steps done in the run (a growth step's index).
      mutable GrowthSteps: int
      /// Sum of the training losses of the epoch's batches so far.
      mutable EpochLossSum: float
      /// The run's first batch loss (NaN before it), for the divergence warning.
      mutable FirstLoss: float
      /// Training time before this process (the `seconds` fields continue from it).
      mutable Seconds: float
      mutable GrowthSeconds: float
      /// Test accuracy of the last finished epoch.
      mutable LastAccuracy: float
      /// Length of metrics.jsonl when the state was taken: a resumed run truncates it there, so no
      /// line is lost or written twice.
      mutable MetricsBytes: int64
      /// γ chosen at each junction's last growth (0: none yet); the next γ search starts there.
      /// Null in checkpoints written before it existed (then every search starts cold).
      mutable LastGammas: float[] | null }

    static member Start() =
        { Epoch = 1; Batch = 0; GrownAtBatch = false; Step = 0L; GrowthSteps = 0; EpochLossSum = 0.0
          FirstLoss = nan; Seconds = 0.0; GrowthSeconds = 0.0; LastAccuracy = 0.0; MetricsBytes = 0L
          LastGammas = [||] }
