/// Accumulation of a junction's statistics (DESIGN §4) over batches. Per-batch products are GEMMs
/// in the rows' dtype, summed into float64; dividing by the number of samples at the end makes
/// the result independent of how the data was split into batches.
module TinyGrow.Core.Statistics

open TorchSharp
open TinyGrow.Abstractions

/// The standard error of the mean of `xs`: their sample standard deviation over √n (NaN with fewer than two).
let meanStandardError (xs: float[]) =
    if xs.Length < 2 then nan
    else
        let mean = Array.average xs
        sqrt ((xs |> Array.sumBy (fun x -> (x - mean) * (x - mean))) / float (xs.Length - 1) / float xs.Length)

type private Sums =
    { S: torch.Tensor; M: torch.Tensor; S2: torch.Tensor; M2: torch.Tensor; P: torch.Tensor
      mutable TraceE: float; mutable Samples: int64; mutable UnitRoundoff: float; mutable RowsPerProduct: int64
      /// Σ p and Σ p pᵀ of A's input patches (junctions whose A's normalisation grows with it).
      mutable AMean: torch.Tensor option; mutable ASecond: torch.Tensor option; mutable APatchRows: float
      /// Per-group Σ b̃ gᵀ and Σ b̃ bᵀ (G×D2×out, G×D2×D1) and samples, when groups are kept; per-group
      /// Σ b̃ b̃ᵀ as the rows themselves (GroupRows, scaled by √weight) while they are few (groupRowsLimit),
      /// then as G×D2×D2 float64 sums (GroupS2).
      GroupM2: torch.Tensor option; GroupP: torch.Tensor option; mutable GroupS2: torch.Tensor option
      mutable GroupRows: ResizeArray<torch.Tensor>[] option; mutable KeptRows: int64; GroupSamples: int64[]; mutable Batches: int }

/// Rows kept (all groups together) before they are summed into G×D2×D2 float64 sums: G·D2/2 float32
/// rows take a quarter of the sums' memory, so that the switch (sums allocated, rows still held) peaks
/// at 1.25× what the sums alone take, which is what the host's memory estimate counts for them.
let groupRowsLimit (groups: int) (d2: int64) = int64 groups * d2 / 2L

/// Unit roundoff of a floating dtype (products formed per batch in float32 carry its rounding into
/// the float64 sums).
let unitRoundoff (dtype: torch.ScalarType) =
    match dtype with
    | torch.ScalarType.Float64 -> 1.1102230246251565e-16
    | torch.ScalarType.Float32 -> 5.960464477539063e-08
    | torch.ScalarType.Float16 -> 4.8828125e-4
    | _ -> 3.90625e-3 // bfloat16, and anything coarser we do not expect

/// Σ_r b̃_r xᵀ_r: D2×C for b̃ rows [r, D2]; for b̃ rows with taps [r, T, D2], D2×(T·C) with column
/// t·C + c = Σ_r b̃_{r,t} x_{r,c} (a block per tap, tap-major: the layout of M2 and P in full conv mode).
let tapMajor (bt: torch.Tensor) (x: torch.Tensor) =
    if bt.dim () = 2L then bt.t().mm x
    else
        let r, taps, d2 = bt.shape[0], bt.shape[1], bt.shape[2]
        use perTap = bt.permute(2L, 1L, 0L).reshape (d2 * taps, r)
        use product = perTap.mm x
        product.reshape (d2, taps * x.shape[1])

/// Elements of position patches (JunctionRows.PositionPatches) a row sample may hold: 64 Mi, 256 MB in float32.
/// A pooled head over many positions (a stride-1 conv of a large map before a global average pool) keeps fewer
/// samples instead of exhausting memory; the Fashion-MNIST CNN's last conv keeps all 1,024 (28 Mi elements).
let positionPatchBudget = 64L * 1024L * 1024L

/// Sums of b bᵀ, b gᵀ, b̃ b̃ᵀ, b̃ gᵀ, b̃ bᵀ and |g|² over every row added, each row counted
/// RowWeight times (rows subsampled at random stand for the rows not drawn). With `groups` > 0 the
/// M2, P and S2 sums are also kept per group, for the significance test of DESIGN §4.1: `Add` puts
/// batch i in group i mod groups, `AddToGroup` where the caller says (StatisticsPass.addBatchRows splits every
/// batch across the groups by sample, so that rows of one sample stay together).
/// `givenS2` (D2×D2, float64, already divided by its own samples; null: none) is an S2 known ahead,
/// e.g. the input covariance kept for the whole run (DESIGN §4.5): Σ b̃ b̃ᵀ, the largest product of a
/// junction whose A reads the network's input (D2² per row against D2·D1), is then not formed and
/// Finish hands over an alias of `givenS2`, which is read only then (a window over training batches
/// sums while the input covariance is still being computed ahead: InputCovariancesAhead). With groups,
/// the per-group S2 are kept as rows (JunctionStatistics.GroupRows), so they need no product either, until the rows outgrow
/// `groupRowsLimit`; from then on each batch's product is formed for the group sums only.
type JunctionAccumulator(groups: int, givenS2: Lazy<torch.Tensor> | null) =
    let mutable sums: Sums option = None
    let skipS2 = not (isNull givenS2)
    // The row sample (JunctionStatistics.RowSample): (b, b̃, g) rows kept as they come, and the
    // weighted count of all rows added, which the kept ones stand for.
    let sampleB, sampleATilde, sampleG = ResizeArray<torch.Tensor> (), ResizeArray<torch.Tensor> (), ResizeArray<torch.Tensor> ()
    // A's patches at every position of each kept row's sample, when the rows carry them (JunctionRows.PositionPatches).
    let samplePatches = ResizeArray<torch.Tensor> ()
    let sampleBatches = ResizeArray<int64> ()
    let mutable batchesAdded = 0L
    let mutable sampleKept = 0L
    let mutable rowsRepresented = 0.0
    let mutable patchElements = 0L
    // Adds `pick` of each of the rows' tensors (new tensors: copies the sample owns) as batch `batchesAdded`.
    let keepSampleRows (rows: JunctionRows) (pick: torch.Tensor -> torch.Tensor) =
        let b = pick rows.B
        sampleB.Add (b.DetachFromDisposeScope ())
        sampleATilde.Add ((pick rows.ATilde).DetachFromDisposeScope ())
        sampleG.Add ((pick rows.G).DetachFromDisposeScope ())
        match rows.PositionPatches with
        | null -> ()
        | p ->
            let kept = pick p
            patchElements <- patchElements + kept.numel ()
            samplePatches.Add (kept.DetachFromDisposeScope ())
        sampleKept <- sampleKept + b.shape[0]
        for _ in 1L .. b.shape[0] do sampleBatches.Add batchesAdded
    let checkRows (rows: JunctionRows) =
        let b, bt, g = rows.B, rows.ATilde, rows.G
        if b.shape[0] <> bt.shape[0] || b.shape[0] <> g.shape[0] then
            invalidArg "rows" $"Junction rows disagree on the number of positions: b {b.shape[0]}, b̃ {bt.shape[0]}, g {g.shape[0]}."
        match rows.PositionPatches with
        | NonNull p when p.dim () <> 3L || p.shape[0] <> b.shape[0] ->
            invalidArg "rows" $"Junction rows: the position patches must be [rows, positions, D2] with {b.shape[0]} rows, not {p.shape}."
        | _ -> ()
    let disposeSample () =
        for list in [ sampleB; sampleATilde; sampleG; samplePatches ] do
            for t in list do t.Dispose ()
            list.Clear ()
        sampleBatches.Clear ()
        sampleKept <- 0L
        patchElements <- 0L

    new() = JunctionAccumulator (0, (null: Lazy<torch.Tensor> | null))
    new(groups: int) = JunctionAccumulator (groups, (null: Lazy<torch.Tensor> | null))
    /// With an S2 known now (null: none).
    new(groups: int, givenS2: torch.Tensor | null) =
        JunctionAccumulator (groups, (match givenS2 with | null -> null | g -> Lazy<torch.Tensor>.CreateFromValue g))

    /// Whether Add forms Σ b̃ b̃ᵀ (false: S2 is the given one).
    member _.FormsS2 = not skipS2

    /// Rows to keep as JunctionStatistics.RowSample (0: none). At most an eighth of them come from one
    /// batch, spread evenly over its rows, so that the sample spans batches. Only rows with one b̃ per
    /// position (not full conv mode's taps) are kept.
    member val KeepRows = 0 with get, set

    /// Whether the row sample is drawn by the caller from every row of each batch (AddSample), rather than
    /// taken from the rows the sums use (RowsPerDimension·RowSize per pass, a few hundred for a narrow junction):
    /// the cross-validation's variance falls with the rows it has (Growth:CrossValidationRows).
    member val SampleFromEveryRow = false with get, set

    /// Elements of position patches the row sample may hold (positionPatchBudget); rows beyond it are not kept.
    member val PositionPatchBudget = positionPatchBudget with get, set

    /// At most `take` rows, fewer when their position patches would overrun PositionPatchBudget.
    member private this.WithinPatchBudget(rows: JunctionRows, take: int64) =
        match rows.PositionPatches with
        | null -> take
        | p -> min take (max 0L ((this.PositionPatchBudget - patchElements) / max 1L (p.shape[1] * p.shape[2])))

    /// Adds rows drawn for the row sample only (SampleFromEveryRow): one call per batch, each call one batch
    /// of the cross-validation's folds; rows beyond KeepRows are dropped, still counted as represented.
    member this.AddSample(rows: JunctionRows) =
        checkRows rows
        if rows.ATilde.dim () = 2L then
            let r = rows.B.shape[0]
            rowsRepresented <- rowsRepresented + rows.RowWeight * float r
            let take = this.WithinPatchBudget (rows, min r (int64 this.KeepRows - sampleKept))
            if take > 0L then
                keepSampleRows rows (fun t -> t.narrow(0L, 0L, take).clone ())
            batchesAdded <- batchesAdded + 1L

    /// Adds a batch's rows; with groups, the batch goes to group (batches added so far) mod groups.
    member this.Add(rows: JunctionRows) =
        let group = match sums with Some s when groups > 0 -> s.Batches % groups | _ -> 0
        this.AddToGroup (rows, group)

    /// Adds rows to group `group` (with groups; ignored without): for splitting each batch across the
    /// groups (StatisticsPass.addBatchRows). Groups are filled from 0 up.
    member this.AddToGroup(rows: JunctionRows, group: int) =
        checkRows rows
        let b, bt, g = rows.B, rows.ATilde, rows.G
        if bt.dim () <> 2L && bt.dim () <> 3L then
            invalidArg "rows" $"Junction rows: b̃ must be [rows, D2] or [rows, taps, D2], not {bt.dim ()}-dimensional."
        let taps = if bt.dim () = 3L then bt.shape[1] else 1L
        let f64 (t: torch.Tensor) = t.to_type torch.ScalarType.Float64
        let s =
            match sums with
            | Some s -> s
            | None ->
                // Created outside any caller's per-batch dispose scope's reach: they outlive the batch.
                let z (r: int64) (c: int64) =
                    let t = torch.zeros ([| r; c |], dtype = torch.ScalarType.Float64, device = b.device)
                    t.DetachFromDisposeScope ()
                // Full conv mode (DESIGN §4.3): b̃ rows carry T taps ([r, T, D2]); M2 and P get a
                // column block per tap (tap-major), S2 sums over taps.
                let d1, d2, out = b.shape[1], bt.shape[int (bt.dim ()) - 1], g.shape[1]
                let outTaps, d1Taps = out * taps, d1 * taps
                let zg (r: int64) (c: int64) =
                    let t = torch.zeros ([| int64 groups; r; c |], dtype = torch.ScalarType.Float64, device = b.device)
                    Some (t.DetachFromDisposeScope ())
                let s = { S = z d1 d1; M = z d1 out; S2 = (if skipS2 then z 0L 0L else z d2 d2); M2 = z d2 outTaps; P = z d2 d1Taps; TraceE = 0.0; Samples = 0L; UnitRoundoff = 0.0; RowsPerProduct = 0L
                          AMean = None; ASecond = None; APatchRows = 0.0
                          GroupM2 = (if groups > 0 then zg d2 outTaps else None); GroupP = (if groups > 0 then zg d2 d1Taps else None)
                          GroupS2 = None; GroupRows = (if groups > 0 then Some (Array.init groups (fun _ -> ResizeArray ())) else None); KeptRows = 0L
                          GroupSamples = Array.zeroCreate (max groups 0); Batches = 0 }
                sums <- Some s
                s
        use scope = torch.NewDisposeScope ()
        let w = rows.RowWeight
        // A float32 product is added to its float64 sum as it is: the in-place add promotes it to float64,
        // the same values as converting it first, without a float64 copy of every product of every batch.
        // With a row weight the product is converted first (the weighted add's kernel on promoted inputs
        // is another loop than the one on float64 inputs).
        let add (sum: torch.Tensor) (product: torch.Tensor) =
            (if w = 1.0 then sum.add_ product else sum.add_ (f64 product, w.ToScalar ())) |> ignore
        add s.S (b.t().mm b)
        add s.M (b.t().mm g)
        let d2 = bt.shape[int (bt.dim ()) - 1]
        let flat = bt.reshape (-1L, d2)
        let s2 = lazy (flat.t().mm flat)
        if not skipS2 then add s.S2 s2.Value
        let m2 = tapMajor bt g
        let p = tapMajor bt b
        add s.M2 m2
        add s.P p
        match s.GroupM2, s.GroupP with
        | Some gm2, Some gp ->
            if group < 0 || group >= groups then invalidArg (nameof group) $"Group {group} of {groups}."
            let i = group
            add (gm2.select (0L, int64 i)) m2
            add (gp.select (0L, int64 i)) p
            match s.GroupRows with
            | Some kept ->
                let scaled = if w = 1.0 then flat.clone () else flat * sqrt w
                kept[i].Add (scaled.DetachFromDisposeScope ())
                s.KeptRows <- s.KeptRows + flat.shape[0]
                if s.KeptRows > groupRowsLimit groups d2 then
                    // Past groupRowsLimit: sum the rows kept (already scaled by √weight), and the batches to come, as products.
                    let gs2 = torch.zeros ([| int64 groups; d2; d2 |], dtype = torch.ScalarType.Float64, device = b.device)
                    for k in 0 .. groups - 1 do
                        for r in kept[k] do
                            (gs2.select (0L, int64 k)).add_ (f64 (r.t().mm r)) |> ignore
                            r.Dispose ()
                    s.GroupS2 <- Some (gs2.DetachFromDisposeScope ())
                    s.GroupRows <- None
            | None -> s.GroupS2 |> Option.iter (fun gs2 -> add (gs2.select (0L, int64 i)) s2.Value)
            s.GroupSamples[i] <- s.GroupSamples[i] + rows.Samples
        | _ -> ()
        s.Batches <- s.Batches + 1
        s.TraceE <- s.TraceE + w * (f64 g).square().sum().item<float> ()
        match rows.APatches with
        | null -> ()
        | patches ->
            let keep (t: torch.Tensor) = t.DetachFromDisposeScope ()
            let mean = s.AMean |> Option.defaultWith (fun () -> keep (torch.zeros ([| patches.shape[1] |], dtype = torch.ScalarType.Float64, device = b.device)))
            let second = s.ASecond |> Option.defaultWith (fun () -> keep (torch.zeros ([| patches.shape[1]; patches.shape[1] |], dtype = torch.ScalarType.Float64, device = b.device)))
            s.AMean <- Some mean
            s.ASecond <- Some second
            add mean (patches.sum 0L)
            add second (patches.t().mm patches)
            s.APatchRows <- s.APatchRows + w * float patches.shape[0]
        if this.KeepRows > 0 && not this.SampleFromEveryRow && bt.dim () = 2L then
            let r = b.shape[0]
            rowsRepresented <- rowsRepresented + w * float r
            let take = this.WithinPatchBudget (rows, min r (min (int64 this.KeepRows - sampleKept) (max 1L (int64 this.KeepRows / 8L))))
            if take > 0L then
                use spread = torch.linspace (0.0, float (r - 1L), take, device = b.device)
                use idx = spread.round().to_type (torch.ScalarType.Int64)
                keepSampleRows rows (fun t -> t.index_select (0L, idx))
            batchesAdded <- batchesAdded + 1L
        s.Samples <- s.Samples + rows.Samples
        s.UnitRoundoff <- max s.UnitRoundoff (unitRoundoff b.dtype)
        s.RowsPerProduct <- max s.RowsPerProduct (b.shape[0] * taps) // S2's product sums every tap's rows

    /// Statistics divided by the number of samples; the accumulator's tensors are handed over.
    member _.Finish() : JunctionStatistics =
        match sums with
        | None -> invalidOp "No rows were added to the junction accumulator."
        | Some s ->
            let n = float s.Samples
            sums <- None
            let div (t: torch.Tensor) = t.div_ (n.ToScalar ())
            // A's patch moments are averages over (sample, A-position) rows, as a normalisation sees them.
            let optional (t: torch.Tensor option) : torch.Tensor | null =
                match t with Some t -> t.div_ (s.APatchRows.ToScalar ()) | None -> null
            // Groups that received rows (filled from 0 up), in the same 1/n scale as M2 and P.
            let used = s.GroupSamples |> Array.takeWhile (fun c -> c > 0L) |> Array.length
            let grouped (t: torch.Tensor option) : torch.Tensor | null =
                match t with
                | Some t when used >= 2 ->
                    let kept = t.narrow(0L, 0L, int64 used).div(n.ToScalar ())
                    t.Dispose ()
                    kept
                | Some t -> t.Dispose (); null
                | None -> null
            let fractions : float[] | null =
                if s.GroupM2.IsSome && used >= 2 then s.GroupSamples |> Array.take used |> Array.map (fun c -> float c / n) else null
            // Rows of the groups used, scaled by 1/√n so that R_gᵀR_g is in the scale of S2.
            let groupRows : torch.Tensor[] | null =
                match s.GroupRows with
                | Some kept when used >= 2 ->
                    let scale = 1.0 / sqrt n
                    let rows = Array.init used (fun k -> (use all = torch.cat (kept[k].ToArray (), 0L) in all * scale))
                    for list in kept do for r in list do r.Dispose ()
                    rows
                | Some kept ->
                    for list in kept do for r in list do r.Dispose ()
                    null
                | None -> null
            let s2 =
                match givenS2 with
                | NonNull g when skipS2 -> s.S2.Dispose (); g.Value.alias ()
                | _ -> div s.S2
            let rowSample : JunctionRows | null =
                if sampleKept = 0L then null
                else
                    let cat (list: ResizeArray<torch.Tensor>) = torch.cat (list.ToArray (), 0L)
                    // Position patches only when every kept row has them (the rows of one junction either all do or none).
                    let patches : torch.Tensor | null = if samplePatches.Count = sampleB.Count then cat samplePatches else null
                    new JunctionRows (cat sampleB, cat sampleATilde, cat sampleG, s.Samples, rowsRepresented / float sampleKept,
                                      PositionPatches = patches)
            new JunctionStatistics(div s.S, div s.M, s2, div s.M2, div s.P, s.TraceE / n, s.Samples, s.UnitRoundoff, s.RowsPerProduct,
                                   optional s.AMean, optional s.ASecond, grouped s.GroupM2, grouped s.GroupP, fractions, grouped s.GroupS2, groupRows,
                                   RowSample = rowSample,
                                   RowSampleBatches = (if isNull rowSample then null else torch.tensor (sampleBatches.ToArray (), dtype = torch.ScalarType.Int64)))
            |> fun statistics -> disposeSample (); statistics

    /// Releases the sums of an accumulator that will not be finished (a statistics window given up).
    member _.Discard() =
        disposeSample ()
        match sums with
        | None -> ()
        | Some s ->
            sums <- None
            for t in [ s.S; s.M; s.S2; s.M2; s.P ] do t.Dispose ()
            for t in [ s.AMean; s.ASecond; s.GroupM2; s.GroupP; s.GroupS2 ] do t |> Option.iter (fun t -> t.Dispose ())
            s.GroupRows |> Option.iter (fun kept -> for list in kept do for r in list do r.Dispose ())
