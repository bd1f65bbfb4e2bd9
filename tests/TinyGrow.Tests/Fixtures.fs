/// Small problems built by hand for the growth tests: dense layers and networks (float64 unless
/// said), random data, a `tiny` proposal for a junction.
module TinyGrow.Tests.Fixtures

open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Growth.Linear
open TinyGrow.Growth.Strategies

let dense = DenseKind () :> ILayerKind
let mlpKind = MlpBlockKind () :> IBlockKind
let layerKinds = readOnlyDict [ "dense", dense ]
let tiny = TinyStrategy () :> IGrowthStrategy

let spec (width: int) (maxWidth: int) (activation: string) (bias: bool) =
    LayerSpec (Kind = "dense", Width = width, MaxWidth = maxWidth, Activation = activation, Bias = bias)

/// inputs → hidden… (activation) → classes (identity), all dense with or without biases, seeded.
let mlpWith (bias: bool) (seed: int64) (dtype: torch.ScalarType) (inputs: int) (hidden: int list) (activation: string) (classes: int) =
    use g = new torch.Generator (uint64 seed)
    let block = BlockSpec (Kind = "mlp", Layers = ResizeArray [ for h in hidden -> spec h 256 activation bias ], IsOutput = true, OutputBias = bias)
    let context = BlockContext ([| int64 inputs |], classes, layerKinds, torch.CPU, dtype, g, "mlp")
    new Network ([| mlpKind.Create (block, context) |])

/// The layers of an MLP built by `mlp`: every junction's A, then the last junction's B.
let layersOf (net: Network) : IGrowableLayer[] =
    Array.append (net.Junctions |> Array.map (fun j -> j.A)) [| net.Junctions[net.JunctionCount - 1].B |]

/// Layer i of an MLP built by `mlp`.
let layerOf (net: Network) (i: int) = (layersOf net)[i]

/// `mlpWith` with biases.
let mlp seed dtype inputs hidden activation classes = mlpWith true seed dtype inputs hidden activation classes

/// A dense junction A → σ → B over two free-standing layers (for requests built from hand rows).
let junctionOf (a: IGrowableLayer) (b: IGrowableLayer) : IJunction =
    Junctions.ChainJunction ("test", a, None, b, 1024, (fun () -> 0L), (fun () -> 0L), Junctions.denseRows a b, id)

/// Random class labels (int64) in [0, classes).
let labels (seed: int64) (n: int64) (classes: int64) =
    use scores = TestUtil.randn seed n classes
    scores.argmax 1L

/// Parameters of a layer as plain tensors (weight, bias).
let weightAndBias (layer: IGrowableLayer) =
    let ps = Seq.toArray layer.Parameters
    ps[0] :> torch.Tensor, ps[1] :> torch.Tensor

/// Options of the closed-form tests: the identities they check (c = 0, FD = Δ + Σλ² − c) hold for exact
/// pseudo-inverses, so the eigenvalue cutoff sits at rounding level rather than at the application's
/// default (1e-3, which leaves weak input directions out of S⁺ and S2^{-1/2} on purpose).
let options (threshold: float) (useDelta: bool) =
    GrowthOptions (RelativeThreshold = threshold, UseDelta = useDelta, EigenCutoff = 1e-10)

/// The `tiny` proposal for junction j of `net` from `stats`.
let propose (net: Network) (j: int) (stats: JunctionStatistics) (maxNeurons: int) (opts: GrowthOptions) =
    tiny.Propose (GrowthRequest (stats, net.Junctions[j], maxNeurons, opts, null))

/// The proposal's directions as Bottleneck's record (for crossTerm).
let directions (p: NeuronProposal) : Bottleneck.NeuronDirections =
    { FanIn = p.FanIn; FanOut = p.FanOut; Lambdas = p.NeuronScores |> Array.map sqrt }

let isFinite (t: torch.Tensor) =
    use ok = t.isfinite ()
    ok.all().item<bool> ()

/// Mean loss of the network with `proposal` applied to junction j at γ, then undone.
let lossWith (net: Network) (j: int) (proposal: NeuronProposal) (stats: JunctionStatistics) (x: torch.Tensor) (y: torch.Tensor) (gamma: float) =
    let applied = Candidate.apply net j proposal stats gamma
    try Training.meanLoss net x y finally Candidate.undo applied

/// Largest absolute entry (0 for an empty tensor).
let maxAbs (t: torch.Tensor) = if t.numel () = 0L then 0.0 else t.abs().max().ToDouble ()

/// |a − b|∞ ≤ relTol · max(|a|∞, |b|∞), with the shapes equal.
let allClose (a: torch.Tensor) (b: torch.Tensor) (relTol: float) =
    a.shape = b.shape && TestUtil.maxAbsDiff a b <= relTol * max (maxAbs a) (maxAbs b)

/// Every statistic of two junctions agrees to relTol (relative to the larger entry).
let statsClose (a: JunctionStatistics) (b: JunctionStatistics) (relTol: float) =
    [ "S", allClose a.S b.S relTol
      "M", allClose a.M b.M relTol
      "S2", allClose a.S2 b.S2 relTol
      "M2", allClose a.M2 b.M2 relTol
      "P", allClose a.P b.P relTol
      "TraceE", abs (a.TraceE - b.TraceE) <= relTol * max (abs a.TraceE) (abs b.TraceE) ]
    |> List.filter (fun (_, ok) -> not ok)
    |> List.map fst

/// Same shape, dtype and every entry equal (exact, no tolerance).
let identical (a: torch.Tensor) (b: torch.Tensor) =
    a.shape = b.shape && a.dtype = b.dtype
    && (use e = a.eq b
        use all = e.all ()
        all.item<bool> ())

/// 1200 train / 300 test samples in R^8 (float32), labels from a random 8 → 16 → 3 tanh teacher: the
/// engine tests' task.
let teacherDataset () =
    let f32 = torch.ScalarType.Float32
    use teacher = mlp 301L f32 8 [ 16 ] "tanh" 3
    let split (seed: int64) (n: int64) =
        use x64 = TestUtil.randn seed n 8L
        let x = x64.to_type f32
        use _ = torch.no_grad ()
        use logits = teacher.Forward x
        new DataSplit (x, logits.argmax 1L)
    new LoadedDataset ("teacher", split 302L 1200L, split 303L 300L, [| 8L |], 3, StoredInputs.Instance)

/// The dense layer kind and the mlp block kind, as the engine takes them.
let denseKinds = System.Collections.Generic.Dictionary<string, ILayerKind> (dict [ "dense", dense ]) :> System.Collections.Generic.IReadOnlyDictionary<_, _>
let mlpBlockKinds = System.Collections.Generic.Dictionary<string, IBlockKind> (dict [ "mlp", mlpKind ]) :> System.Collections.Generic.IReadOnlyDictionary<_, _>
