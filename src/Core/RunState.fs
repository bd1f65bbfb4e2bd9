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
      /// Growth steps in a row, up to now, that added no neuron (Growth:StopAfterEmptySteps).
      mutable EmptyGrowthSteps: int
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
      /// Where each junction's next γ search starts (0: cold): the γ its last search chose, or after a
      /// refusal the smallest γ that search tried.
      /// Null in checkpoints written before it existed (then every search starts cold).
      mutable LastGammas: float[] | null
      /// Per junction, its growth events in a row that added nothing (WidthsSetBy.Bottleneck); null in
      /// checkpoints written before it was kept.
      mutable EmptyInARow: int[] | null
      /// The growth step (1-based; 0: none) whose following training batches are being averaged
      /// (AfterGrowth), how many of them so far, and the sum of their losses.
      mutable AfterGrowthStep: int
      mutable AfterGrowthBatches: int
      mutable AfterGrowthLossSum: float
      /// Growth:StatisticsFrom = "training": the junctions of the growth step in progress still to grow
      /// (their statistics window is being summed over training batches; null or empty: no step in
      /// progress), and the neurons the step has added so far.
      mutable PendingJunctions: int[] | null
      mutable PendingAdded: int
      /// Growth points reached while a step was still summing its window: each starts a step as soon
      /// as the one in progress ends (so StepsPerEpoch steps still happen, later).
      mutable DeferredSteps: int }

    static member Start() =
        { Epoch = 1; Batch = 0; GrownAtBatch = false; Step = 0L; GrowthSteps = 0; EmptyGrowthSteps = 0; EpochLossSum = 0.0
          FirstLoss = nan; Seconds = 0.0; GrowthSeconds = 0.0; LastAccuracy = 0.0; MetricsBytes = 0L
          LastGammas = [||]; EmptyInARow = [||]; AfterGrowthStep = 0; AfterGrowthBatches = 0; AfterGrowthLossSum = 0.0
          PendingJunctions = null; PendingAdded = 0; DeferredSteps = 0 }

/// The mean training loss of the batches right after a growth step (an `after_growth` line of
/// metrics.jsonl): how much the step disturbed training, which the held-out loss just after the step
/// does not show (DESIGN §4.6). Kept in RunState so that a resumed run writes the same lines.
module AfterGrowth =
    /// Batches averaged after each growth step.
    let batches = 50

    /// (growth step, batches, mean loss) of the step followed so far, and stops following it.
    let private finish (state: RunState) =
        let line = state.AfterGrowthStep - 1, state.AfterGrowthBatches, state.AfterGrowthLossSum / float state.AfterGrowthBatches
        state.AfterGrowthStep <- 0
        line

    /// The step followed until now, cut short (by the next growth step or the end of the run), if it had batches.
    let flush (state: RunState) =
        if state.AfterGrowthStep > 0 && state.AfterGrowthBatches > 0 then Some (finish state) else None

    /// Follows growth step `step` (0-based); the step followed until now, cut short, if it had batches.
    let start (state: RunState) (step: int) =
        let pending = flush state
        state.AfterGrowthStep <- step + 1
        state.AfterGrowthBatches <- 0
        state.AfterGrowthLossSum <- 0.0
        pending

    /// Counts a trained batch's loss; the followed step once it has `batches` of them.
    let add (state: RunState) (loss: float) =
        if state.AfterGrowthStep = 0 then None
        else
            state.AfterGrowthBatches <- state.AfterGrowthBatches + 1
            state.AfterGrowthLossSum <- state.AfterGrowthLossSum + loss
            if state.AfterGrowthBatches >= batches then Some (finish state) else None
