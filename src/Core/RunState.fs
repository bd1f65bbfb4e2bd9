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
      /// SHA-256 (hex) of those bytes (RunLog.Sha256); null in checkpoints written before it was kept.
      mutable MetricsSha256: string | null
      /// Where each junction's next γ search starts (0: cold): the γ its last search chose, or after a
      /// refusal the smallest γ that search tried.
      /// Null in checkpoints written before it existed (then every search starts cold).
      mutable LastGammas: float[] | null
      /// Per junction, the γ its last accepted search chose (0: none yet): where a cold junction of the
      /// same kind borrows its start until it accepts one (GammaSearch.borrowedStart). Null in checkpoints written
      /// before it was kept (then nothing is borrowed).
      mutable AcceptedGammas: float[] | null
      /// Per junction, its growth events in a row that added nothing (WidthsSetBy.Bottleneck); null in
      /// checkpoints written before it was kept.
      mutable EmptyInARow: int[] | null
      /// The growth step (1-based; 0: none) whose following training batches are being averaged
      /// (AfterGrowth), how many of them so far, and the sum of their losses.
      mutable AfterGrowthStep: int
      mutable AfterGrowthBatches: int
      mutable AfterGrowthLossSum: float
      mutable AfterGrowthSquareSum: float
      /// The last AfterGrowth.batches training losses (a ring, RecentCount of them written in all), and
      /// the mean, standard error and count of those before the step being followed.
      mutable RecentLosses: float[] | null
      mutable RecentCount: int64
      mutable BeforeGrowthMean: float
      mutable BeforeGrowthError: float
      mutable BeforeGrowthBatches: int
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
          FirstLoss = nan; Seconds = 0.0; GrowthSeconds = 0.0; LastAccuracy = 0.0; MetricsBytes = 0L; MetricsSha256 = null
          LastGammas = [||]; AcceptedGammas = [||]; EmptyInARow = [||]; AfterGrowthStep = 0; AfterGrowthBatches = 0; AfterGrowthLossSum = 0.0
          AfterGrowthSquareSum = 0.0; RecentLosses = null; RecentCount = 0L; BeforeGrowthMean = nan; BeforeGrowthError = nan; BeforeGrowthBatches = 0
          PendingJunctions = null; PendingAdded = 0; DeferredSteps = 0 }

/// The mean training loss of the batches right after a growth step (an `after_growth` line of
/// metrics.jsonl), beside the mean of as many batches right before it, each with its standard error
/// (batch-to-batch spread / √batches): how much the step disturbed training, which the held-out loss
/// just after the step does not show (DESIGN §4.6). A step raised the loss when the mean after exceeds
/// the mean before by more than twice the standard error of the difference. Kept in RunState so that a
/// resumed run writes the same lines.
module AfterGrowth =
    /// Batches averaged after (and before) each growth step.
    let batches = 50

    /// What one after_growth line holds.
    type Line =
        { Step: int
          Batches: int
          Mean: float
          Error: float
          BeforeBatches: int
          BeforeMean: float
          BeforeError: float }
        /// After − before exceeds twice the standard error of the difference.
        member l.Raised =
            l.BeforeBatches > 1 && l.Batches > 1 && l.Mean - l.BeforeMean > 2.0 * sqrt (l.Error * l.Error + l.BeforeError * l.BeforeError)

    let private standardError (sum: float) (squares: float) (count: int) =
        if count < 2 then nan
        else
            let mean = sum / float count
            sqrt (max 0.0 (squares / float count - mean * mean) * float count / float (count - 1) / float count)

    /// (growth step, batches, mean loss) of the step followed so far, and stops following it.
    let private finish (state: RunState) =
        let count = state.AfterGrowthBatches
        let line =
            { Step = state.AfterGrowthStep - 1; Batches = count; Mean = state.AfterGrowthLossSum / float count
              Error = standardError state.AfterGrowthLossSum state.AfterGrowthSquareSum count
              BeforeBatches = state.BeforeGrowthBatches; BeforeMean = state.BeforeGrowthMean; BeforeError = state.BeforeGrowthError }
        state.AfterGrowthStep <- 0
        line

    /// The step followed until now, cut short (by the next growth step or the end of the run), if it had batches.
    let flush (state: RunState) =
        if state.AfterGrowthStep > 0 && state.AfterGrowthBatches > 0 then Some (finish state) else None

    /// Follows growth step `step` (0-based), the last `batches` losses before it kept as its baseline;
    /// the step followed until now, cut short, if it had batches.
    let start (state: RunState) (step: int) =
        let pending = flush state
        state.AfterGrowthStep <- step + 1
        state.AfterGrowthBatches <- 0
        state.AfterGrowthLossSum <- 0.0
        state.AfterGrowthSquareSum <- 0.0
        let recent =
            match state.RecentLosses with
            | null -> [||]
            | ring -> ring |> Array.truncate (int (min state.RecentCount (int64 ring.Length)))
        state.BeforeGrowthBatches <- recent.Length
        state.BeforeGrowthMean <- (if recent.Length > 0 then Array.average recent else nan)
        state.BeforeGrowthError <- standardError (Array.sum recent) (recent |> Array.sumBy (fun l -> l * l)) recent.Length
        pending

    /// Counts a trained batch's loss (in the ring of recent losses, and for the followed step); the followed
    /// step once it has `batches` of them.
    let add (state: RunState) (loss: float) =
        let ring = match state.RecentLosses with | null -> (let r = Array.zeroCreate batches in state.RecentLosses <- r; r) | r -> r
        ring[int (state.RecentCount % int64 ring.Length)] <- loss
        state.RecentCount <- state.RecentCount + 1L
        if state.AfterGrowthStep = 0 then None
        else
            state.AfterGrowthBatches <- state.AfterGrowthBatches + 1
            state.AfterGrowthLossSum <- state.AfterGrowthLossSum + loss
            state.AfterGrowthSquareSum <- state.AfterGrowthSquareSum + loss * loss
            if state.AfterGrowthBatches >= batches then Some (finish state) else None
