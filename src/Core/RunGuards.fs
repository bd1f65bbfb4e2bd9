/// Checks that stop a run which can no longer mean anything, and what is written when a run stops
/// early. Kept apart from the engine's loop, which only reports each trained batch here.
namespace TinyGrow.Core

open System
open System.IO
open System.Text.Json.Nodes
open Microsoft.Extensions.Logging

/// The training loss became NaN or infinite: every later step would train on nonsense.
type NonFiniteLossException(epoch: int, batch: int, learningRate: float, loss: float) =
    inherit Exception(
        $"the training loss is {loss} at epoch {epoch}, batch {batch} (learning rate {learningRate:g3}): training diverged. " +
        "Lower Training:LearningRate (e.g. by 10×), or use Training:Optimizer=adam.")
    member _.Epoch = epoch
    member _.Batch = batch

/// Where a run is: the last batch trained (1-based within its epoch; 0 before the first), and the
/// losses the divergence warning compares.
type RunProgress(logger: ILogger) =
    let mutable firstLoss = nan
    let mutable epochLossSum = 0.0
    member val Epoch = 0 with get, set
    member val Batch = 0 with get, set
    member _.Logger = logger
    member internal _.FirstLoss with get () = firstLoss and set v = firstLoss <- v
    member internal _.EpochLossSum with get () = epochLossSum and set v = epochLossSum <- v

module RunGuards =
    /// Records that batch `batch` of `batches` in `epoch` trained with `loss`, and returns `loss`.
    /// A non-finite loss stops the run at once (NonFiniteLossException); an epoch whose mean loss
    /// stays above the run's first batch loss gets a warning (it usually means a learning rate too high).
    let trained (progress: RunProgress) (epoch: int) (batch: int) (batches: int) (learningRate: float) (loss: float) =
        if not (Double.IsFinite loss) then raise (NonFiniteLossException (epoch, batch, learningRate, loss))
        if progress.Epoch <> epoch then progress.EpochLossSum <- 0.0
        progress.Epoch <- epoch
        progress.Batch <- batch
        if Double.IsNaN progress.FirstLoss then progress.FirstLoss <- loss
        progress.EpochLossSum <- progress.EpochLossSum + loss
        if batch = batches && progress.EpochLossSum / float batches > progress.FirstLoss then
            progress.Logger.LogWarning (
                "epoch {Epoch}: the mean training loss {Mean:g4} stayed above the first batch's {First:g4}; Training:LearningRate may be too high (the rate was {LearningRate:g3} at the epoch's last batch)",
                epoch, progress.EpochLossSum / float batches, progress.FirstLoss, learningRate)
        loss

    /// Appends {"event": "interrupted", "reason", "epoch", "batch"} to `metrics` (a metrics.jsonl whose
    /// writer is closed), so that a folder left by a failure or Ctrl-C says so. Epoch and batch are the
    /// last batch trained (0 if none).
    let writeInterrupted (metrics: string) (reason: string) (progress: RunProgress) =
        let line = JsonObject ()
        line["event"] <- JsonValue.Create "interrupted"
        line["reason"] <- JsonValue.Create reason
        line["epoch"] <- JsonValue.Create progress.Epoch
        line["batch"] <- JsonValue.Create progress.Batch
        File.AppendAllText (metrics, line.ToJsonString () + "\n")
