/// Statistics rows of junctions whose A is a conv (DESIGN §4.3), from (sample, position) rows drawn
/// at random, the same rows for S, M, S2, M2 and P. Only the patches of the drawn rows are
/// gathered (never a whole batch's unfold), so memory is rows × D, not samples × positions × D.
module TinyGrow.Growth.Conv.ConvRows

open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core

type Tensor = torch.Tensor

/// Output size of a conv along one axis.
let outputSize (size: int64) (kernel: int) (stride: int) (padding: int) (dilation: int) =
    (size + 2L * int64 padding - int64 dilation * int64 (kernel - 1) - 1L) / int64 stride + 1L

/// Patches of `x` ([n, C, H, W]) for a conv of (kernel, stride, padding, dilation) at output
/// positions (sample[r], oh[r], ow[r]): [r, C·k·k] in unfold's layout (channel, kernel row, column).
let patches (x: Tensor) (kernel: int) (stride: int) (padding: int) (dilation: int) (sample: Tensor) (oh: Tensor) (ow: Tensor) =
    use scope = torch.NewDisposeScope ()
    let x = x.contiguous ()
    let c, h, w = x.shape[1], x.shape[2], x.shape[3]
    let k = int64 kernel
    let taps = torch.arange (k, device = x.device) * int64 dilation
    // One gather of flat indices ((s·C + c)·H + h)·W + w, shaped [r, C, k, k] (unfold's layout), with
    // taps in the padding masked to zero. Padding the whole batch, or advanced indexing with
    // broadcast index tensors, cost ~10× more than the gather itself here.
    let channels = torch.arange (c, device = x.device)
    let channel = channels.view (1L, -1L, 1L, 1L)
    let hh = (oh * int64 stride - int64 padding).view (-1L, 1L, 1L, 1L) + taps.view (1L, 1L, -1L, 1L)
    let ww = (ow * int64 stride - int64 padding).view (-1L, 1L, 1L, 1L) + taps.view (1L, 1L, 1L, -1L)
    let inside = hh.ge(0L.ToScalar ()).logical_and(hh.lt (h.ToScalar ())).logical_and(ww.ge (0L.ToScalar ())).logical_and (ww.lt (w.ToScalar ()))
    let flat = ((sample.view (-1L, 1L, 1L, 1L) * c + channel) * h + hh.clamp (0L.ToScalar (), (h - 1L).ToScalar ())) * w + ww.clamp (0L.ToScalar (), (w - 1L).ToScalar ())
    let picked = x.take flat * inside.to_type x.dtype
    picked.reshape(sample.shape[0], -1L).MoveToOuterDisposeScope ()

/// Mean over a conv's output positions of its input patches, [n, C·k·k] in unfold's layout, without
/// unfolding: per tap, the mean of a strided window of the (zero-padded) input. F.unfold of a whole
/// batch took 8× a conv forward here.
let meanPatch (x: Tensor) (kernel: int) (stride: int) (padding: int) (dilation: int) =
    use scope = torch.NewDisposeScope ()
    let p = int64 padding
    let padded = if padding > 0 then torch.nn.functional.pad (x, [| p; p; p; p |]) else x
    let ho = outputSize x.shape[2] kernel stride padding dilation
    let wo = outputSize x.shape[3] kernel stride padding dilation
    let s = int64 stride
    let taps =
        [| for u in 0 .. kernel - 1 do
            for v in 0 .. kernel - 1 do
                let top, left = int64 (u * dilation), int64 (v * dilation)
                let window = padded.slice(2L, top, top + s * (ho - 1L) + 1L, s).slice (3L, left, left + s * (wo - 1L) + 1L, s)
                yield window.mean ([| 2L; 3L |]) |]
    // [n, C, k·k] → [n, C·k·k]: channel-major, then kernel row, then column.
    (torch.stack (taps, 2L)).reshape(x.shape[0], -1L).MoveToOuterDisposeScope ()

/// (sample, oh, ow) of flat row indices over an [n, H, W] grid.
let private unflatten (rows: Tensor) (h: int64) (w: int64) =
    let hw = (h * w).ToScalar ()
    rows.floor_divide hw, (rows.remainder hw).floor_divide (w.ToScalar ()), rows.remainder (w.ToScalar ())

/// Rows to draw from an [n, H, W] grid: indices (or all) and the weight each row stands for.
let private draw (n: int64) (h: int64) (w: int64) (maxRows: int64) (generator: torch.Generator | null) (device: torch.Device) =
    let total = n * h * w
    match Junctions.sampleRows total maxRows generator device with
    | Some idx, weight -> idx, weight
    | None, weight -> torch.arange (total, device = device), weight

/// Geometry of a conv layer as the rows need it.
type Geometry = { Kernel: int; Stride: int; Padding: int; Dilation: int }

let geometryOf (c: ConvLayer) = { Kernel = c.Kernel; Stride = c.Stride; Padding = c.Padding; Dilation = c.Dilation }

/// A's input patches at A output positions (ah, aw) of `sample`, averaged over a q×q average
/// pool between A and B when q > 1 (linear, so the pooled input of a new channel is α·(mean patch)).
let private aPatchesAt (aInput: Tensor) (a: Geometry) (pool: int) (sample: Tensor) (ph: Tensor) (pw: Tensor) =
    if pool <= 1 then patches aInput a.Kernel a.Stride a.Padding a.Dilation sample ph pw
    else
        use scope = torch.NewDisposeScope ()
        let mutable sum = None
        for u in 0 .. pool - 1 do
            for v in 0 .. pool - 1 do
                let p = patches aInput a.Kernel a.Stride a.Padding a.Dilation sample (ph * int64 pool + int64 u) (pw * int64 pool + int64 v)
                sum <- Some (match sum with Some s -> s + p | None -> p)
        let total: Tensor = sum.Value
        (total / float (pool * pool)).MoveToOuterDisposeScope ()

/// Rows of A's input patches at A's own output positions, drawn at random (for a normalisation
/// that grows with A: the new channel's mean and variance).
let aMomentRows (aInput: Tensor) (a: Geometry) (aHasBias: bool) (maxRows: int64) (generator: torch.Generator | null) =
    let n = aInput.shape[0]
    let ho = outputSize aInput.shape[2] a.Kernel a.Stride a.Padding a.Dilation
    let wo = outputSize aInput.shape[3] a.Kernel a.Stride a.Padding a.Dilation
    let idx, weight = draw n ho wo maxRows generator aInput.device
    use idx = idx
    use scope = torch.NewDisposeScope ()
    let s, oh, ow = unflatten idx ho wo
    (Junctions.withOnes aHasBias (patches aInput a.Kernel a.Stride a.Padding a.Dilation s oh ow)).MoveToOuterDisposeScope (), weight

/// How a new channel's fan-out enters B's kernel (DESIGN §4.3): `Restricted` (default) writes only
/// the centre tap, and S2 is taken from the same aligned b̃ as N (exact); `Full` writes every tap
/// (T = k·k), b̃ rows carry one patch per tap ([r, T, D2]), M2 and P get a column block per tap and
/// S2 sums over taps, ignoring cross-tap terms (the tap-diagonal approximation).
type FanOutMode =
    | Restricted
    | Full

/// The mode a BlockSpec's ConvFanOut names (checked by the block kinds' Validate).
let tryFanOutMode (name: string) =
    match name with
    | "restricted" -> Some Restricted
    | "full" -> Some Full
    | _ -> None

let fanOutMode (name: string) =
    tryFanOutMode name |> Option.defaultWith (fun () -> invalidArg "ConvFanOut" $"ConvFanOut = '{name}': use restricted or full.")

/// The Validate problem for a spec's ConvFanOut, if any.
let fanOutProblems (key: string) (name: string) =
    match tryFanOutMode name with
    | Some _ -> []
    | None -> [ $"{key}:ConvFanOut = '{name}': use restricted or full." ]

/// b̃ at B's kernel tap whose B-input pixel is (oh·s + offH, ow·s + offW) for B output (oh, ow):
/// A's input patch at that pixel (averaged over the pool between A and B), zero with its bias
/// entry when the pixel lies in B's padding.
let private aRowsAt (aInput: Tensor) (a: Geometry) (aHasBias: bool) (pool: int) (hb: int64) (wb: int64) (bStride: int)
                    (s: Tensor) (oh: Tensor) (ow: Tensor) (offH: int64) (offW: int64) =
    use scope = torch.NewDisposeScope ()
    let ch: Tensor = oh * int64 bStride + offH
    let cw: Tensor = ow * int64 bStride + offW
    let inside = (ch.ge (0L.ToScalar ())).logical_and(ch.lt (hb.ToScalar ())).logical_and(cw.ge (0L.ToScalar ())).logical_and (cw.lt (wb.ToScalar ()))
    let ch, cw = ch.clamp (0L.ToScalar (), (hb - 1L).ToScalar ()), cw.clamp (0L.ToScalar (), (wb - 1L).ToScalar ())
    let rows = Junctions.withOnes aHasBias (aPatchesAt aInput a pool s ch cw) * inside.unsqueeze(1L).to_type aInput.dtype
    rows.MoveToOuterDisposeScope ()

/// Rows of a conv → (norm, σ, q×q average pool) → conv junction: b is B's input patch at B output
/// position p; g = ∂L/∂(B's output) at p. Restricted: b̃ is A's input patch at the A position under
/// B's kernel centre for p (zero, bias entry included, when that centre lies in B's padding). Full:
/// the same under every tap of B's kernel, [r, k·k, D2] in the kernel's (row, column) order.
let convToConv (mode: FanOutMode) (aInput: Tensor) (a: Geometry) (aHasBias: bool) (pool: int) (bInput: Tensor) (b: Geometry) (bHasBias: bool)
               (gradB: Tensor) (withMoments: bool) (maxRows: int64) (generator: torch.Generator | null) : JunctionRows =
    use _ = torch.no_grad ()
    let n, hb, wb = bInput.shape[0], bInput.shape[2], bInput.shape[3]
    let ho, wo = gradB.shape[2], gradB.shape[3]
    let idx, weight = draw n ho wo maxRows generator bInput.device
    use idx = idx
    use scope = torch.NewDisposeScope ()
    let s, oh, ow = unflatten idx ho wo
    let bRows = Junctions.withOnes bHasBias (patches bInput b.Kernel b.Stride b.Padding b.Dilation s oh ow)
    let at = aRowsAt aInput a aHasBias pool hb wb b.Stride s oh ow
    let aRows =
        match mode with
        | Restricted ->
            // B's kernel centre for output p, in B-input pixels (may be padding).
            let offset = int64 (b.Dilation * (b.Kernel - 1) / 2 - b.Padding)
            at offset offset
        | Full ->
            let tap (u: int) = int64 (u * b.Dilation - b.Padding)
            torch.stack ([| for u in 0 .. b.Kernel - 1 do
                              for v in 0 .. b.Kernel - 1 -> at (tap u) (tap v) |], 1L)
    let g = gradB.detach().permute(0L, 2L, 3L, 1L).reshape(-1L, gradB.shape[1]).index_select (0L, idx)
    let moments =
        if withMoments then
            // Averaged by the accumulator with this batch's row weight: batches are weighed in
            // proportion to their samples either way, so the moments are plain averages.
            Some (fst (aMomentRows aInput a aHasBias maxRows generator))
        else None
    let keep (t: Tensor) = t.MoveToOuterDisposeScope ()
    new JunctionRows (keep bRows, keep aRows, keep g, n, weight, (match moments with Some m -> keep m | None -> null))

/// A new channel's fan-out as B's kernel columns in full mode: ω_k is (T·out) tap-major (row
/// t·out + o, t = kernel row·k + column), turned into [out, K, k, k].
let fullKernels (kernel: int) (fanOut: Tensor) =
    let taps = int64 (kernel * kernel)
    let out, k = fanOut.shape[0] / taps, fanOut.shape[1]
    use perTap = fanOut.reshape (int64 kernel, int64 kernel, out, k)
    perTap.permute(2L, 3L, 0L, 1L).contiguous ()

/// A's input patch at every one of its ho×wo output positions for each sample of x: [samples, ho·wo, D2]
/// (trailing 1 if A has a bias), positions in flatten's order.
let private everyPositionPatches (x: Tensor) (a: Geometry) (aHasBias: bool) (ho: int64) (wo: int64) =
    let r, hw = x.shape[0], ho * wo
    let sample = torch.arange(r, device = x.device).repeat_interleave (hw)
    let position = torch.arange(hw, device = x.device).repeat (r)
    let each = patches x a.Kernel a.Stride a.Padding a.Dilation sample (position.floor_divide (wo.ToScalar ())) (position.remainder (wo.ToScalar ()))
    (Junctions.withOnes aHasBias each).reshape (r, hw, -1L)

/// Rows of a conv → (norm, σ) → head → dense junction, one row per sample. Head "gap" (global
/// average pool): b̃ is the mean over A's output positions of A's input patches (the pooled output
/// of a new channel is, to first order, α·mean patch); both modes alike (no kernel to restrict).
/// Head "flatten": a new channel adds one dense input per position. Restricted like a conv's centre
/// tap, its fan-out is the same at every position, so its contribution is ω·(α·Σ patches): b̃ is
/// the *sum* of the patches and ω is repeated over the positions when applied. Full: a fan-out per
/// position (the positions are the taps), b̃ is [r, H·W, D2], A's patch at each position in
/// flatten's order. b is the dense layer's input, g = ∂L/∂(dense output).
let convToHead (mode: FanOutMode) (flatten: bool) (aInput: Tensor) (a: Geometry) (aHasBias: bool) (bInput: Tensor) (bHasBias: bool)
               (gradB: Tensor) (withMoments: bool) (maxRows: int64) (generator: torch.Generator | null) : JunctionRows =
    use _ = torch.no_grad ()
    let n = aInput.shape[0]
    let idx, weight = Junctions.sampleRows n maxRows generator aInput.device
    use scope = torch.NewDisposeScope ()
    let x = Junctions.pick idx aInput
    let ho = outputSize x.shape[2] a.Kernel a.Stride a.Padding a.Dilation
    let wo = outputSize x.shape[3] a.Kernel a.Stride a.Padding a.Dilation
    let aRows =
        match flatten, mode with
        | true, Full -> everyPositionPatches x a aHasBias ho wo
        | _ ->
            let mean = meanPatch x a.Kernel a.Stride a.Padding a.Dilation
            let positions = float (ho * wo)
            let pooled = if flatten then mean * positions else mean
            // The bias entry of a summed patch counts once per position, like the patches' other entries.
            let positions = if flatten then positions else 1.0
            if aHasBias then
                use ones = torch.full ([| pooled.shape[0]; 1L |], positions.ToScalar (), dtype = pooled.dtype, device = pooled.device)
                torch.cat ([| pooled; ones |], 1L)
            else pooled
    let bRows = Junctions.withOnes bHasBias (Junctions.pick idx (bInput.flatten 1L))
    let g = Junctions.pick idx (gradB.detach ())
    let moments =
        if withMoments then Some (fst (aMomentRows aInput a aHasBias (if maxRows <= 0L then 0L else maxRows * 16L) generator))
        else None
    // A new channel behind a normalisation reaches a pooled head as the mean over positions of σ(ẑ), which the
    // mean patch cannot give (it gives σ of the mean): A's patch at every position, for the new units' features.
    let positionPatches = if withMoments && not flatten then Some (everyPositionPatches x a aHasBias ho wo) else None
    let keep (t: Tensor) = t.MoveToOuterDisposeScope ()
    idx |> Option.iter (fun t -> t.Dispose ())
    new JunctionRows (keep bRows, keep aRows, keep g, n, weight, (match moments with Some m -> keep m | None -> null),
                      PositionPatches = (match positionPatches with Some p -> keep p | None -> null))

/// A new channel's fan-out as the dense layer's columns after a flatten of an H·W map. Restricted:
/// ω_k (out) repeated over the positions. Full: ω_k is (H·W·out) position-major (row q·out + o),
/// turned into out × (K·H·W) columns, channel-major like flatten's inputs.
let flattenColumns (mode: FanOutMode) (positions: int64) (fanOut: Tensor) =
    match mode with
    | Restricted -> fanOut.repeat_interleave (positions, 1L)
    | Full ->
        let out, k = fanOut.shape[0] / positions, fanOut.shape[1]
        use perPosition = fanOut.reshape (positions, out, k)
        use columns = perPosition.permute (1L, 2L, 0L)
        columns.reshape (out, k * positions)
