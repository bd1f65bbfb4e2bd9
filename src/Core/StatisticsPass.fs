/// Stage 1 of a growth step (DESIGN §3, §4): the statistics pass. Per batch one probe forward
/// (BatchNorm from batch statistics, running ones untouched) and one backward of the *sum* of the loss,
/// so that g is a per-sample gradient, then GEMM sums over the rows each junction keeps:
///   S = Σbbᵀ/n, M = Σbgᵀ/n, S2 = Σb̃b̃ᵀ/n, M2 = Σb̃gᵀ/n, P = Σb̃bᵀ/n, tr E = Σ|g|²/n.
/// Rows are drawn at random (RowsPerDimension·max(D1, D2) per pass, the same rows for every sum).
module TinyGrow.Core.StatisticsPass

open System
open TorchSharp
open TorchSharp.Modules
open TinyGrow.Abstractions

/// Rows a junction keeps from one batch of `count` out of `total` samples: RowsPerDimension·RowSize
/// over the pass, spread in proportion to the batch (0: every row).
let rowsPerBatch (rowsPerDimension: int) (junction: IJunction) (count: int64) (total: int64) =
    if rowsPerDimension <= 0 then 0L
    else max 1L ((int64 rowsPerDimension * junction.RowSize * count + total - 1L) / total)

/// Adds one batch's rows of `junction` (`count` samples of the `total` the statistics are taken on) to
/// `acc`. With groups and `splitBatch`, the batch's samples are split into min(groups, count)
/// consecutive chunks, chunk k going to group k: every group sees every batch, so in a window over
/// training batches (weights moving between batches) the drift is common to all groups and the
/// significance test does not count it as noise; rows of one sample stay in one group. It costs
/// `groups` row extractions and sets of small products per batch instead of one (measured: 2× the
/// growth time of a pass), so a statistics pass, whose weights do not move, keeps whole batches as
/// groups (`Add`).
let addBatchRows (acc: Statistics.JunctionAccumulator) (groups: int) (splitBatch: bool) (rowsPerDimension: int) (junction: IJunction)
                 (record: JunctionRecord) (grad: torch.Tensor) (count: int64) (total: int64) (generator: torch.Generator | null) =
    if acc.SampleFromEveryRow && acc.KeepRows > 0 then
        // The row sample's own draw, KeepRows over the pass in proportion to the batch, before the sums' rows.
        use sample = junction.Rows (record, grad, max 1L ((int64 acc.KeepRows * count + total - 1L) / total), generator)
        acc.AddSample sample
    if groups <= 0 || not splitBatch then
        use rows = junction.Rows (record, grad, rowsPerBatch rowsPerDimension junction count total, generator)
        acc.Add rows
    else
        let chunks = min (int64 groups) count
        for k in 0L .. chunks - 1L do
            use scope = torch.NewDisposeScope ()
            let start = k * count / chunks
            let size = (k + 1L) * count / chunks - start
            let part (t: torch.Tensor) = t.narrow (0L, start, size)
            let chunk = JunctionRecord (part record.AInput, part record.BInput, part record.BOutput)
            use rows = junction.Rows (chunk, part grad, rowsPerBatch rowsPerDimension junction size total, generator)
            acc.AddToGroup (rows, int k)

/// Statistics of the given junctions over (x, y), in that order: per batch one probe forward
/// (batch statistics; running ones untouched) and one backward of the *sum* of the loss (so that g
/// is a per-sample gradient) to those junctions only, then GEMM sums over the rows each keeps.
/// With `groups` > 0, M2 and P are also kept per group of whole batches (JunctionStatistics.GroupM2/GroupP).
/// `givenS2 j`: an S2 of junction j known ahead (its product is then not formed, see
/// Statistics.JunctionAccumulator), or null. `keepRows j`: rows junction j keeps as its RowSample (0: none).
/// `sampleFromEveryRow`: the row sample is drawn from every row of each batch (JunctionAccumulator.SampleFromEveryRow).
let statisticsSampled (keepRows: int -> int) (sampleFromEveryRow: bool) (givenS2: int -> torch.Tensor | null) (groups: int) (junctions: int[])
                      (rowsPerDimension: int) (generator: torch.Generator | null)
                      (net: Network) (x: torch.Tensor) (y: torch.Tensor) (batchSize: int64) : JunctionStatistics[] =
    let accumulators =
        junctions |> Array.map (fun j -> Statistics.JunctionAccumulator (groups, givenS2 j, KeepRows = keepRows j, SampleFromEveryRow = sampleFromEveryRow))
    let n = x.shape[0]
    let mutable start = 0L
    while start < n do
        use scope = torch.NewDisposeScope ()
        let count = min batchSize (n - start)
        let xb, yb = x.narrow (0L, start, count), y.narrow (0L, start, count)
        let logits, records = net.ForwardRecording xb
        let loss = torch.nn.functional.cross_entropy (logits, yb, reduction = torch.nn.Reduction.Sum)
        let grads = torch.autograd.grad ([| loss |], junctions |> Array.map (fun j -> records[j].BOutput))
        use _ = torch.no_grad ()
        for k in 0 .. junctions.Length - 1 do
            addBatchRows accumulators[k] groups false rowsPerDimension net.Junctions[junctions[k]] records[junctions[k]] grads[k] count n generator
        start <- start + count
    accumulators |> Array.map (fun a -> a.Finish ())

/// statisticsSampled with the row sample taken from the sums' rows.
let statisticsWith (keepRows: int -> int) (givenS2: int -> torch.Tensor | null) (groups: int) (junctions: int[]) (rowsPerDimension: int) (generator: torch.Generator | null)
                   (net: Network) (x: torch.Tensor) (y: torch.Tensor) (batchSize: int64) : JunctionStatistics[] =
    statisticsSampled keepRows false givenS2 groups junctions rowsPerDimension generator net x y batchSize

/// statisticsWith, every product formed.
let statisticsGrouped (groups: int) (junctions: int[]) (rowsPerDimension: int) (generator: torch.Generator | null) (net: Network)
                      (x: torch.Tensor) (y: torch.Tensor) (batchSize: int64) : JunctionStatistics[] =
    statisticsWith (fun _ -> 0) (fun _ -> null) groups junctions rowsPerDimension generator net x y batchSize

/// statisticsGrouped without groups.
let statisticsFor (junctions: int[]) (rowsPerDimension: int) (generator: torch.Generator | null) (net: Network)
                  (x: torch.Tensor) (y: torch.Tensor) (batchSize: int64) : JunctionStatistics[] =
    statisticsGrouped 0 junctions rowsPerDimension generator net x y batchSize

/// Statistics of junctions first .. J−1 (element i is junction first + i).
let statisticsPassFrom (first: int) (rowsPerDimension: int) (generator: torch.Generator | null) (net: Network)
                       (x: torch.Tensor) (y: torch.Tensor) (batchSize: int64) : JunctionStatistics[] =
    statisticsFor [| first .. net.JunctionCount - 1 |] rowsPerDimension generator net x y batchSize

/// Statistics of every junction (element j is junction j).
let statisticsPass (net: Network) (x: torch.Tensor) (y: torch.Tensor) (batchSize: int64) : JunctionStatistics[] =
    statisticsPassFrom 0 0 null net x y batchSize

/// Groups of batches a junction accumulator keeps (for the significance test; 0: none).
let significanceGroups (options: GrowthOptions) = if options.SignificanceTest = "none" then 0 else options.SignificanceGroups
