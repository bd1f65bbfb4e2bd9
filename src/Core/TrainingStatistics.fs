/// Statistics taken from the training batches themselves (Growth:StatisticsFrom = "training",
/// DESIGN §4.5): the training step's forward records the junctions, its backward keeps the
/// gradients at their B outputs as well, and the rows are summed as a statistics pass sums them.
/// Growth then costs only its sums, solves and γ search: no forward or backward of its own.
/// What it trades: the weights move between the batches of a window, so the statistics describe
/// the network averaged over the window's steps, not the network at the growth point (the γ search
/// still measures the real network: a proposal that no longer helps is not applied), and the rows
/// are the training batches as trained on (augmented, when the dataset augments).
module TinyGrow.Core.TrainingStatistics

open System
open System.Diagnostics
open TorchSharp
open TinyGrow.Abstractions

/// Training batches a window needs for `samples` statistics samples (at least one).
let windowBatches (samples: int) (batchSize: int) = max 1 ((samples + batchSize - 1) / batchSize)

/// Sums the statistics of `junctions` over the next `batches` training batches of `batchSize`.
/// `givenS2 j`: an S2 of junction j known ahead, read when the window is complete (see
/// Statistics.JunctionAccumulator), or null.
type Window(junctions: int list, batches: int, batchSize: int, groups: int, rowsPerDimension: int, givenS2: int -> Lazy<torch.Tensor> | null) =
    let accumulators = junctions |> List.map (fun j -> j, Statistics.JunctionAccumulator (groups, givenS2 j)) |> Map.ofList
    let mutable collected = 0
    let mutable finished = false
    let clock = Stopwatch ()
    // Rows a junction keeps from one batch: spread over the window as a pass spreads them over its samples.
    let total = int64 batches * int64 batchSize

    /// Rows junction j keeps as its RowSample (see Statistics.JunctionAccumulator.KeepRows).
    member _.KeepRows with set (rows: int -> int) = for KeyValue (j, a) in accumulators do a.KeepRows <- rows j

    /// Whether the row sample is drawn from every row of each batch (Statistics.JunctionAccumulator.SampleFromEveryRow).
    member _.SampleFromEveryRow with set (every: bool) = for KeyValue (_, a) in accumulators do a.SampleFromEveryRow <- every

    /// The junctions whose statistics the window sums, in the order they grow.
    member _.Junctions = junctions

    /// Training batches summed so far, and the window's length.
    member _.Collected = collected
    member _.Batches = batches
    member _.IsComplete = collected >= batches

    /// Seconds spent on the window's own work (rows and sums), not on the training steps it rides on.
    member _.Seconds = clock.Elapsed.TotalSeconds

    /// Adds one training batch of `count` samples: the recording forward's records and the
    /// gradients of the batch's *mean* loss at each of the window's junctions' B outputs.
    member _.Add(net: Network, records: JunctionRecord[], meanLossGrads: Map<int, torch.Tensor>, count: int64, generator: torch.Generator | null) =
        clock.Start ()
        try
            use _ = torch.no_grad ()
            for j in junctions do
                use scope = torch.NewDisposeScope ()
                // Per-sample gradients, as the statistics pass takes them from the summed loss.
                use g = meanLossGrads[j].mul ((float count).ToScalar ())
                // Groups split within every batch: the weights move between a window's batches.
                StatisticsPass.addBatchRows accumulators[j] groups true rowsPerDimension net.Junctions[j] records[j] g count total generator
            collected <- collected + 1
        finally
            clock.Stop ()

    /// The window's statistics, junction → statistics (the caller disposes them).
    member _.Finish() : Map<int, JunctionStatistics> =
        clock.Start ()
        try
            finished <- true
            accumulators |> Map.map (fun _ a -> a.Finish ())
        finally
            clock.Stop ()

    interface IDisposable with
        member _.Dispose() = if not finished then for a in accumulators.Values do a.Discard ()

/// One training step (as Training.trainStep) whose forward records the window's junctions and whose
/// backward also yields the gradients at their B outputs, added to `window`; returns the batch's mean loss.
let trainStep (net: Network) (optimizer: IOptimizer) (learningRate: float) (x: torch.Tensor) (y: torch.Tensor)
              (window: Window) (generator: torch.Generator | null) =
    use scope = torch.NewDisposeScope ()
    Training.zeroGradients net
    let logits, records = net.ForwardRecording (x, true)
    for j in window.Junctions do records[j].BOutput.retain_grad () |> ignore
    let loss = torch.nn.functional.cross_entropy (logits, y)
    loss.backward ()
    let grads =
        window.Junctions
        |> List.map (fun j ->
            match records[j].BOutput.grad with
            | null -> invalidOp $"Junction {net.Junctions[j].Name}: its B output received no gradient in the training step."
            | g -> j, g)
        |> Map.ofList
    window.Add (net, records, grads, x.shape[0], generator)
    optimizer.Step learningRate
    loss.ToDouble ()
