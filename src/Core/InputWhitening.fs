/// The input whitening cache (DESIGN §4.5): a junction whose A reads the network's input has an S2 that
/// depends only on the data, so it is computed once per run (on more samples) with its factor W,
/// WᵀW = S2⁺: the statistics pass then skips S2 and the strategy skips the factorisation.
module TinyGrow.Core.InputWhitening

open System
open TorchSharp
open TorchSharp.Modules
open TinyGrow.Abstractions

/// A junction's input covariance S2 and its whitening W (WᵀW = S2⁺, an explicit r×D2 matrix),
/// kept for the whole run when A reads the network's input (DESIGN §4.5): the statistics pass then
/// skips S2 and the strategy skips the factorisation. With what it cost (an `input_covariance` line).
type InputCovariance =
    { S2: torch.Tensor
      Whitening: torch.Tensor
      Samples: int64
      /// How W was obtained ("cholesky", "eigh", "QR of the rows …" or "randomized range finder …"), and the precision it ran in.
      Path: string
      StatisticsSeconds: float
      FactorSeconds: float }
    interface IDisposable with
        member this.Dispose () =
            this.S2.Dispose ()
            this.Whitening.Dispose ()

/// A factor W (WᵀW = S2⁺) of the statistics' S2, float64, factorised in the precision the rows were
/// formed in. Float32 rows leave rounding of about D·u₃₂·λmax in S2 (Bottleneck.roundingLevel), which
/// the cutoff already discards; a float32 factorisation adds an error of O(u₃₂)·λmax to S2, which the
/// whitening amplifies in its small directions: measured (`make bench ARGS=whitening-precision`), the
/// proposal's λ_k move by at most 2e-5 (D2 = 785) to 1.6e-3 (3,073) relative, far inside the sampling
/// noise of statistics from thousands of samples, for 0.44× the time (eigh of a 3,073² S2 is the
/// largest single cost of growing on CIFAR-10 inputs). Float64 rows keep a float64 factorisation,
/// and with it the float64 tests' 1e-10.
let whiteningOf (stats: JunctionStatistics) (cutoff: float) : torch.Tensor * string =
    let formedInFloat32 = stats.UnitRoundoff > 1e-12
    use s2 = if formedInFloat32 then stats.S2.to_type torch.ScalarType.Float32 else stats.S2.alias ()
    use factor = LinearAlgebra.psdFactor s2 cutoff
    let precision = if formedInFloat32 then "float32" else "float64"
    match factor with
    | LinearAlgebra.Cholesky l ->
        use l64 = l.to_type torch.ScalarType.Float64
        use eye = torch.eye (l.shape[0], dtype = torch.ScalarType.Float64, device = l.device)
        torch.linalg.solve_triangular (l64, eye, upper = false), $"cholesky ({precision})"
    | LinearAlgebra.Eigen rows -> rows.to_type (torch.ScalarType.Float64, copy = true), $"eigh ({precision}, rank {rows.shape[0]} of {s2.shape[0]})"

/// Junction j's rows b̃ on x, every row, each scaled by 1/√samples (S2 = RᵀR); None when there are
/// at least `limit` of them.
let private inputRows (net: Network) (j: int) (x: torch.Tensor) (limit: int64) : torch.Tensor option =
    use _ = torch.no_grad ()
    let n = x.shape[0]
    let parts = ResizeArray<torch.Tensor> ()
    let mutable count = 0L
    let mutable start = 0L
    while start < n && count < limit do
        use scope = torch.NewDisposeScope ()
        let size = min 256L (n - start)
        let _, records = net.ForwardRecording (x.narrow (0L, start, size))
        let record = records[j]
        use zeros = torch.zeros_like record.BOutput
        use rows = net.Junctions[j].Rows (record, zeros, 0L, null)
        let flat = rows.ATilde.reshape (-1L, rows.ATilde.shape[int (rows.ATilde.dim ()) - 1])
        count <- count + flat.shape[0]
        parts.Add ((flat * sqrt (rows.RowWeight / float n)).DetachFromDisposeScope ())
        start <- start + size
    try
        if count >= limit then None else Some (torch.cat (parts.ToArray (), 0L))
    finally
        for p in parts do p.Dispose ()

/// The randomised factor's Gaussian draws come from a generator of this fixed seed: one factor per
/// dataset, whatever the run's seed, as the input statistics cache needs.
let private randomizedSeed = 0x243F6A8885A308D3UL

/// Junction j's InputCovariance from its S2 on (x, y). `Growth:InputFactor` = "randomized" takes W
/// from a randomised range finder (LinearAlgebra.randomizedFactor) instead of the exact factor below. When the rows are fewer than D2 (CIFAR-10's
/// 3,073 inputs on 2,048 samples), S2 is singular by construction and W comes from the rows
/// (LinearAlgebra.rowsFactor: a QR and an n×n eigh instead of the D2×D2 eigh; measured at 3,073 on
/// 2,048 rows, one thread: 1.6 s against 2.4 s, the same WᵀW to float32 rounding).
let inputCovariance (net: Network) (j: int) (options: GrowthOptions) (generator: torch.Generator | null)
                    (x: torch.Tensor) (y: torch.Tensor) : InputCovariance =
    let clock = Diagnostics.Stopwatch.StartNew ()
    use stats = (StatisticsPass.statisticsFor [| j |] options.RowsPerDimension generator net x y 256L)[0]
    let statisticsSeconds = clock.Elapsed.TotalSeconds
    clock.Restart ()
    let d2 = stats.S2.shape[0]
    let cutoff = Bottleneck.effectiveCutoff options.EigenCutoff stats d2
    // The rows when they are fewer than D2 (S2 is then singular by construction): both factors start from them.
    let rows = if x.shape[0] < d2 then inputRows net j x d2 else None
    let w, path =
        match options.InputFactor, rows with
        | "randomized", _ ->
            // From the rows when they are fewer than D2 (a product costs n·D2·k), otherwise from S2 itself
            // (D2²·k), in the precision the rows were formed in, as the exact factor.
            let formedInFloat32 = stats.UnitRoundoff > 1e-12
            let operator =
                match rows with
                | Some r -> LinearAlgebra.Rows r
                | None -> LinearAlgebra.Matrix (if formedInFloat32 then stats.S2.to_type torch.ScalarType.Float32 else stats.S2.alias ())
            let source = match operator with LinearAlgebra.Rows r -> $"the {r.shape[0]} rows" | LinearAlgebra.Matrix _ -> "S2"
            let precision = if operator.Dtype = torch.ScalarType.Float64 then "float64" else "float32"
            use f = (try LinearAlgebra.randomizedFactor operator cutoff randomizedSeed
                     finally match operator with LinearAlgebra.Rows t | LinearAlgebra.Matrix t -> t.Dispose ())
            let spanned = if f.Spanned then ", spanning S2's range: exact" else ""
            f.W.to_type (torch.ScalarType.Float64, copy = true),
            $"randomized range finder on {source} ({precision}, rank {f.W.shape[0]} of {d2}, {f.Columns} columns, {f.Sketches} sketches{spanned})"
        | _, Some rows ->
            use rows = rows
            use w = LinearAlgebra.rowsFactor rows cutoff
            let precision = if rows.dtype = torch.ScalarType.Float64 then "float64" else "float32"
            w.to_type (torch.ScalarType.Float64, copy = true), $"QR of the rows and eigh of {rows.shape[0]}² ({precision}, rank {w.shape[0]} of {d2})"
        | _, None -> whiteningOf stats cutoff
    // Contiguous, as the input statistics cache reads them back: the products that use them then take
    // the same BLAS path, and a run reading the cache grows bit for bit as the run that wrote it.
    let contiguous = w.contiguous ()
    w.Dispose ()
    { S2 = stats.S2.contiguous().clone().DetachFromDisposeScope (); Whitening = contiguous.DetachFromDisposeScope (); Samples = x.shape[0]; Path = path
      StatisticsSeconds = statisticsSeconds; FactorSeconds = clock.Elapsed.TotalSeconds }

/// The whitening alone (see inputCovariance).
let inputWhitening (net: Network) (j: int) (options: GrowthOptions) (generator: torch.Generator | null)
                   (x: torch.Tensor) (y: torch.Tensor) : torch.Tensor =
    let c = inputCovariance net j options generator x y
    c.S2.Dispose ()
    c.Whitening

/// Junctions whose A reads the network's input itself (their S2 depends only on the data).
let readsInput (net: Network) (x: torch.Tensor) : int list =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope ()
    let probe = x.narrow (0L, 0L, min 2L x.shape[0])
    let _, records = net.ForwardRecording probe
    let flat = probe.flatten 1L
    [ for j in 0 .. net.JunctionCount - 1 do
        let a = records[j].AInput.flatten 1L
        // A's input is the network's input itself (a view of it, or its flattening): no weight feeds it.
        if a.shape = flat.shape && (use same = a.eq flat in use all = same.all () in all.item<bool> ()) then yield j ]
