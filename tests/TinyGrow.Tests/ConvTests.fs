/// Convolutional junctions (DESIGN §4.3): statistics against a float64 brute force over unfolded
/// patches (stride, padding, dilation, centre taps in the padding), the first-order prediction
/// against finite differences, apply/undo against a hand-computed forward, BatchNorm growth in
/// train and eval mode, growth orders the Python reference gets wrong, ResNet-18, save/load.
module TinyGrow.Tests.ConvTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Growth.Conv
open TinyGrow.Growth.Linear
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

let layerKinds = readOnlyDict [ "dense", DenseKind () :> ILayerKind; "conv", ConvKind () :> ILayerKind ]
let blockKinds =
    readOnlyDict [ "mlp", MlpBlockKind () :> IBlockKind; "cnn", CnnBlockKind () :> IBlockKind
                   "resnet-stem", ResNetStemKind () :> IBlockKind; "resnet-basic", BasicBlockKind () :> IBlockKind
                   "resnet-head", ResNetHeadKind () :> IBlockKind ]

let conv (width: int) (kernel: int) (stride: int) (padding: int) (dilation: int) (bias: bool) (bn: bool) (activation: string) (pool: string) =
    LayerSpec (Kind = "conv", Width = width, MaxWidth = 64, Kernel = kernel, Stride = stride, Padding = padding, Dilation = dilation,
               Bias = bias, BatchNorm = bn, Activation = activation, Pool = pool)

let denseSpec (width: int) = LayerSpec (Kind = "dense", Width = width, MaxWidth = 64, Activation = "tanh")

/// A one-block CNN over [channels, size, size] inputs, new channels' fan-outs in `fanOut` mode.
let cnnWith (fanOut: string) (seed: int64) (dtype: torch.ScalarType) (inputShape: int64[]) (layers: LayerSpec list) (head: string) (classes: int) =
    use g = new torch.Generator (uint64 seed)
    let spec = BlockSpec (Kind = "cnn", Layers = ResizeArray layers, Head = head, IsOutput = true, ConvFanOut = fanOut)
    let problems = (blockKinds["cnn"]).Validate (spec, inputShape, "Model")
    if problems.Count > 0 then failwithf "invalid test CNN: %A" problems
    new Network ([| blockKinds["cnn"].Create (spec, BlockContext (inputShape, classes, layerKinds, torch.CPU, dtype, g, "cnn")) |])

/// A one-block CNN, restricted mode (the default).
let cnn seed dtype inputShape layers head classes = cnnWith "restricted" seed dtype inputShape layers head classes

let images (seed: int64) (n: int64) (c: int64) (size: int64) =
    use g = new torch.Generator (uint64 seed)
    torch.randn ([| n; c; size; size |], dtype = f64, generator = g)

/// Brute-force statistics of junction 0 (conv A → conv B) from one recorded batch: b rows from
/// F.unfold of B's input, b̃ by enumerating every (sample, output position) of B and taking the
/// column of F.unfold of A's input at the pixel under B's kernel centre (zero in the padding).
let bruteForce (net: Network) (x: torch.Tensor) (y: torch.Tensor) (a: LayerSpec) (b: LayerSpec) =
    let logits, records = net.ForwardRecording x
    use loss = torch.nn.functional.cross_entropy (logits, y, reduction = torch.nn.Reduction.Sum)
    let r = records[0]
    let grad = (torch.autograd.grad ([| loss |], [| r.BOutput |]))[0]
    use _ = torch.no_grad ()
    let n = x.shape[0]
    let j = net.Junctions[0]
    let ones (rows: torch.Tensor) (bias: bool) = if bias then torch.cat ([| rows; torch.ones ([| rows.shape[0]; 1L |], dtype = f64) |], 1L) else rows
    let ub = torch.nn.functional.unfold (r.BInput, int64 b.Kernel, int64 b.Dilation, int64 b.ResolvedPadding, int64 b.Stride)
    let bRows = ones (ub.permute(0L, 2L, 1L).reshape (-1L, ub.shape[1])) j.B.HasBias
    let ho, wo = grad.shape[2], grad.shape[3]
    let gRows = grad.permute(0L, 2L, 3L, 1L).reshape (-1L, grad.shape[1])
    let ua = torch.nn.functional.unfold (r.AInput, int64 a.Kernel, int64 a.Dilation, int64 a.ResolvedPadding, int64 a.Stride)
    let ha, wa = r.BInput.shape[2], r.BInput.shape[3] // A's output map = B's input map (no pool)
    let d2 = ua.shape[1] + (if j.A.HasBias then 1L else 0L)
    let bt = torch.zeros ([| n * ho * wo; d2 |], dtype = f64)
    let mutable row = 0L
    for i in 0L .. n - 1L do
        for oh in 0L .. ho - 1L do
            for ow in 0L .. wo - 1L do
                let ch = oh * int64 b.Stride - int64 b.ResolvedPadding + int64 (b.Dilation * (b.Kernel - 1) / 2)
                let cw = ow * int64 b.Stride - int64 b.ResolvedPadding + int64 (b.Dilation * (b.Kernel - 1) / 2)
                if ch >= 0L && ch < ha && cw >= 0L && cw < wa then
                    bt[row].narrow(0L, 0L, ua.shape[1]).copy_ (ua[i].select (1L, ch * wa + cw)) |> ignore
                    if j.A.HasBias then bt[row, d2 - 1L] <- torch.tensor (1.0, dtype = f64)
                row <- row + 1L
    let nf = float n
    bRows.t().mm bRows / nf, bRows.t().mm gRows / nf, bt.t().mm bt / nf, bt.t().mm gRows / nf, bt.t().mm bRows / nf, ua

let forward (net: Network) (x: torch.Tensor) =
    use _ = torch.no_grad ()
    net.Forward x

let withTempFolder (f: string -> unit) =
    let dir = System.IO.Path.Combine (System.IO.Path.GetTempPath (), "tinygrow-conv-" + System.Guid.NewGuid().ToString "N")
    System.IO.Directory.CreateDirectory dir |> ignore
    try f dir finally System.IO.Directory.Delete (dir, true)

let geometryCases =
    [ "stride 1, padding 1", conv 3 3 1 1 1 true false "tanh" "none", conv 2 3 1 1 1 true false "tanh" "none"
      "B stride 2, padding 0", conv 3 3 1 1 1 true false "tanh" "none", conv 2 3 2 0 1 true false "tanh" "none"
      "B stride 2, padding 1", conv 3 3 1 0 1 false false "tanh" "none", conv 2 3 2 1 1 true false "tanh" "none"
      "A stride 2, B dilation 2, padding 2", conv 3 3 2 1 1 true false "tanh" "none", conv 2 3 1 2 2 false false "tanh" "none"
      "A dilation 2, B 5×5 padding 2 (centres in the padding)", conv 3 3 1 2 2 true false "tanh" "none", conv 2 5 1 2 1 true false "tanh" "none"
      "no biases, BatchNorm on A", conv 3 3 1 1 1 false true "relu" "none", conv 2 3 2 1 1 false false "tanh" "none" ]

let tests =
    testList "conv" [
        testList "restricted statistics equal the brute force over aligned positions" [
            for name, a, b in geometryCases ->
                test name {
                    use net = cnn 11L f64 [| 2L; 9L; 9L |] [ a; b ] "gap" 3
                    use x = images 12L 5L 2L 9L
                    use y = labels 13L 5L 3L
                    use stats = (StatisticsPass.statisticsPass net x y 5L)[0]
                    let s, m, s2, m2, p, ua = bruteForce net x y a b
                    // The same float64 products summed in another order: rounding only.
                    for label, mine, brute in [ "S", stats.S, s; "M", stats.M, m; "S2", stats.S2, s2; "M2", stats.M2, m2; "P", stats.P, p ] do
                        Expect.isTrue (allClose mine brute 1e-12) $"{label}: max diff {maxAbsDiff mine brute}"
                    if a.BatchNorm then
                        // A's patch moments: averages over (sample, A output position) of F.unfold's columns.
                        use cols = ua.permute(0L, 2L, 1L).reshape (-1L, ua.shape[1])
                        use mean = cols.mean ([| 0L |])
                        Expect.isTrue (allClose (nonNull stats.AMean) mean 1e-12) "A patch mean"
                        use second = cols.t().mm cols / float cols.shape[0]
                        Expect.isTrue (allClose (nonNull stats.ASecondMoment) second 1e-12) "A patch second moment"
                }
        ]

        test "subsampled rows are an unbiased estimate: their average over draws approaches the full statistics" {
            use net = cnn 21L f64 [| 2L; 9L; 9L |] [ conv 3 3 1 1 1 true false "tanh" "none"; conv 2 3 1 1 1 true false "tanh" "none" ] "gap" 3
            use x = images 22L 6L 2L 9L
            use y = labels 23L 6L 3L
            use full = (StatisticsPass.statisticsPass net x y 6L)[0]
            use g = new torch.Generator (24UL)
            let draws = 100
            use sum = torch.zeros_like full.S2
            for _ in 1 .. draws do
                use s = (StatisticsPass.statisticsPassFrom 0 1 g net x y 6L)[0]
                sum.add_ s.S2 |> ignore
            use mean = sum / float draws
            // 100 draws of ~28 of 486 rows: the mean's relative error is ~1/√(100·28) ≈ 2 %; 10 % is
            // far outside noise for a biased estimator (missing weight would be off by 17×).
            Expect.isTrue (allClose mean full.S2 0.1) $"mean of subsampled S2 ≈ full S2 (max diff {maxAbsDiff mean full.S2}, scale {maxAbs full.S2})"
        }
    
        test "identity σ: (L(0) − L(γ))/γ² equals the exact first-order decrease Δ + Σλ² − c" {
            // Restricted mode: b̃ is A's patch under B's kernel centre only, while b holds A's outputs at
            // every tap, so the cross term c = Σ αᵀPδᵀω is not zero even for a linear σ: the first-order
            // decrease is Δ + Σλ² − c, and the finite difference must match it (c is reported).
            use net = cnn 31L f64 [| 2L; 8L; 8L |] [ conv 3 3 1 1 1 true false "identity" "none"; conv 2 3 2 1 1 true false "identity" "none" ] "gap" 3
            use x = images 32L 20L 2L 8L
            use y = labels 33L 20L 3L
            use stats = (StatisticsPass.statisticsPass net x y 20L)[0]
            use proposal = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 10, options 0.0 true, null))
            Expect.isGreaterThan proposal.Count 0 "neurons proposed"
            let cross = Bottleneck.crossTerm stats (nonNull proposal.Delta) (directions proposal)
            let l0 = Training.meanLoss net x y
            let fd gamma = (l0 - lossWith net 0 proposal stats x y gamma) / (gamma * gamma)
            let exact = proposal.PredictedDecrease 1.0 - proposal.ActivationSlope * cross
            let fd3, fd4 = fd 1e-3, fd 1e-4
            printfn "conv FD: K=%d predicted=%.10g cross=%.4g exact=%.10g FD(1e-3)=%.10g FD(1e-4)=%.10g" proposal.Count (proposal.PredictedDecrease 1.0) cross exact fd3 fd4
            // The FD's own error is O(γ²) relative (1e-6 at γ = 1e-3) plus float64 cancellation
            // (1e-16/γ² ~ 1e-10 relative to L): 1e-4 of the decrease is far above both.
            Expect.isLessThan (abs (fd3 - exact)) (1e-4 * abs exact) "FD(1e-3) = Δ + Σλ² − c"
            Expect.isLessThan (abs (fd4 - exact)) (1e-4 * abs exact) "FD(1e-4) = Δ + Σλ² − c"
        }

        testList "head junctions, identity σ: (L(0) − L(γ))/γ² equals Δ + Σλ² − c; γ = 0 changes nothing; apply = hand forward" [
            for head in [ "gap"; "flatten" ] ->
                test head {
                    // conv 2→3 (5×5 map, stride 2 from 9×9) → head → dense 4 → 3 classes. Junction 1 is
                    // conv1 → head → dense0.
                    use net = cnn 35L f64 [| 2L; 9L; 9L |] [ conv 2 3 1 1 1 true false "tanh" "none"; conv 3 3 2 1 1 true false "identity" "none"; denseSpec 4 ] head 3
                    // More samples than the dense layer's inputs (27 + 1 through the flatten), or δ fits g
                    // exactly and there is no bottleneck left to propose neurons for.
                    use x = images 36L 80L 2L 9L
                    use y = labels 37L 80L 3L
                    use stats = (StatisticsPass.statisticsFor [| 1 |] 0 null net x y 80L)[0]
                    use proposal = tiny.Propose (GrowthRequest (stats, net.Junctions[1], 6, options 0.0 true, null))
                    Expect.isGreaterThan proposal.Count 0 "neurons proposed"
                    let cross = Bottleneck.crossTerm stats (nonNull proposal.Delta) (directions proposal)
                    let l0 = Training.meanLoss net x y
                    let exact = proposal.PredictedDecrease 1.0 - proposal.ActivationSlope * cross
                    let fd gamma = (l0 - lossWith net 1 proposal stats x y gamma) / (gamma * gamma)
                    let fd3 = fd 1e-3
                    printfn "%s head FD: K=%d predicted=%.10g cross=%.4g FD(1e-3)=%.10g" head proposal.Count (proposal.PredictedDecrease 1.0) cross fd3
                    Expect.isLessThan (abs (fd3 - exact)) (1e-4 * abs exact) "FD(1e-3) = Δ + Σλ² − c"
                    if head = "gap" then
                        // b = W·mean patch + bias exactly: the GAP junction is a dense junction in disguise.
                        Expect.isLessThan (abs cross) (1e-10 * proposal.PredictedDecrease 1.0) "GAP: c = 0"
                    use before = forward net x
                    (Candidate.apply net 1 proposal stats 0.0).Commit ()
                    use atZero = forward net x
                    Expect.isTrue (identical atZero before) "γ = 0: outputs bit-identical"
                    // By hand: the new channels' maps z_k = γ α_k ⋆ h (identity σ), then the dense layer
                    // sees GAP(z_k) or flatten(z_k) with fan-out γ ω_k (repeated over positions).
                    let gamma = 0.6
                    let k = int64 proposal.Count
                    use expected =
                        use _ = torch.no_grad ()
                        let _, records = net.ForwardRecording x
                        let r = records[1]
                        let dParams = net.Junctions[1].B.Parameters |> Seq.map (fun p -> p :> torch.Tensor) |> Seq.toArray
                        let delta = nonNull proposal.Delta
                        let d1 = delta.shape[1]
                        let existing = torch.nn.functional.linear (r.BInput.flatten 1L, dParams[0] - delta.narrow (1L, 0L, d1 - 1L) * (gamma * gamma), dParams[1] - delta.narrow(1L, d1 - 1L, 1L).flatten () * (gamma * gamma))
                        let alphaW = proposal.FanIn.narrow(1L, 0L, 18L).reshape (k, 2L, 3L, 3L)
                        let alphaB = proposal.FanIn.narrow(1L, 18L, 1L).flatten ()
                        let z = torch.nn.functional.conv2d (r.AInput, alphaW * gamma, alphaB * gamma, [| 2L; 2L |], [| 1L; 1L |], [| 1L; 1L |])
                        let pooled = if head = "gap" then z.mean ([| 2L; 3L |]) else z.sum ([| 2L; 3L |])
                        existing + pooled.mm (proposal.FanOut.t ()) * gamma
                    (Candidate.apply net 1 proposal stats gamma).Commit ()
                    use after =
                        use _ = torch.no_grad ()
                        let _, records = net.ForwardRecording x
                        records[1].BOutput.clone ()
                    Expect.isTrue (allClose after expected 1e-12) $"dense output after apply = hand candidate (max diff {maxAbsDiff after expected})"
                }
        ]

        test "apply then forward equals the candidate computed with conv2d by hand; undo restores the outputs" {
            use net = cnn 41L f64 [| 2L; 8L; 8L |] [ conv 3 3 1 1 1 true false "tanh" "none"; conv 2 3 2 1 1 true false "tanh" "none" ] "gap" 3
            use x = images 42L 10L 2L 8L
            use y = labels 43L 10L 3L
            use stats = (StatisticsPass.statisticsPass net x y 10L)[0]
            use proposal = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 4, options 0.0 true, null))
            let k = int64 proposal.Count
            Expect.isGreaterThan k 1L "several neurons"
            let gamma = 0.7
            use expected =
                use _ = torch.no_grad ()
                let ps (l: IGrowableLayer) = l.Parameters |> Seq.map (fun p -> p :> torch.Tensor) |> Seq.toArray
                let a, b = ps net.Junctions[0].A, ps net.Junctions[0].B
                let delta = nonNull proposal.Delta
                let dW = delta.narrow(1L, 0L, 27L).reshape (2L, 3L, 3L, 3L) // B: 3 input channels × 3×3, bias last
                let dB = delta.narrow(1L, 27L, 1L).flatten ()
                let alphaW = proposal.FanIn.narrow(1L, 0L, 18L).reshape (k, 2L, 3L, 3L)
                let alphaB = proposal.FanIn.narrow(1L, 18L, 1L).flatten ()
                let omega = torch.zeros ([| 2L; k; 3L; 3L |], dtype = f64)
                omega.select(3L, 1L).select(2L, 1L).copy_ (proposal.FanOut * gamma) |> ignore
                let conv2d (input: torch.Tensor) (w: torch.Tensor) (bias: torch.Tensor | null) (stride: int64) =
                    torch.nn.functional.conv2d (input, w, bias, [| stride; stride |], [| 1L; 1L |], [| 1L; 1L |])
                let h = torch.tanh (conv2d x a[0] a[1] 1L)
                let fresh = torch.tanh (conv2d x (alphaW * gamma) (alphaB * gamma) 1L)
                conv2d h (b[0] - dW * (gamma * gamma)) (b[1] - dB * (gamma * gamma)) 2L + conv2d fresh omega null 2L
            let bOutput () =
                use _ = torch.no_grad ()
                let _, records = net.ForwardRecording x
                records[0].BOutput.clone ()
            use before = forward net x
            let applied = Candidate.apply net 0 proposal stats gamma
            Expect.equal net.Widths[0] (3 + int k) "A gained K channels"
            use after = bOutput ()
            // The same float64 products in another order: ~1e-15 relative.
            Expect.isTrue (allClose after expected 1e-12) $"B's output after apply = hand candidate (max diff {maxAbsDiff after expected})"
            Candidate.undo applied
            use restored = forward net x
            Expect.isTrue (identical restored before) "undo restores bit-identical outputs"
            Expect.equal net.Widths[0] 3 "width restored"
        }

        test "BatchNorm grows with its conv: new channels pass their input through in eval and train mode; γ = 0 changes nothing" {
            use net = cnn 51L f64 [| 2L; 8L; 8L |] [ conv 3 3 1 1 1 false true "relu" "none"; conv 2 3 1 1 1 false true "relu" "none" ] "gap" 3
            use x = images 52L 12L 2L 8L
            use y = labels 53L 12L 3L
            use stats = (StatisticsPass.statisticsPass net x y 12L)[0]
            use proposal = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 4, options 0.0 true, null))
            let k = int64 proposal.Count
            Expect.isGreaterThan k 0L "neurons proposed"
            use evalBefore = net.Forward (x, ForwardPass.Evaluation)
            use trainBefore = net.Forward (x, ForwardPass.Probe)
            let parametersBefore = net.Parameters
            (Candidate.apply net 0 proposal stats 0.0).Commit ()
            Expect.isTrue (Array.forall2 (fun (a: Modules.Parameter) (b: Modules.Parameter) -> obj.ReferenceEquals (a, b)) parametersBefore net.Parameters) "γ = 0 replaces nothing"
            use evalZero = net.Forward (x, ForwardPass.Evaluation)
            Expect.isTrue (identical evalZero evalBefore) "γ = 0: eval outputs bit-identical"
            (Candidate.apply net 0 proposal stats 0.8).Commit ()
            let block = net.Blocks[0] :?> CnnBlock
            let stage = block.Stages[0]
            use _ = torch.no_grad ()
            use z = (stage.Conv :> IGrowableLayer).Forward x
            use fresh = z.narrow (1L, 3L, k)
            use evalOut = stage.Norm.Value.Forward (z, ForwardPass.Evaluation)
            use probeOut = stage.Norm.Value.Forward (z, ForwardPass.Probe)
            // Eval: (z − μ)/√(σ² + ε)·√(σ² + ε) + μ = z up to rounding. Train: the batch is the data the
            // moments were measured on (every position), so batch and measured moments agree.
            Expect.isTrue (allClose (evalOut.narrow (1L, 3L, k)) fresh 1e-12) $"eval: new channels = their input (max diff {maxAbsDiff (evalOut.narrow (1L, 3L, k)) fresh})"
            Expect.isTrue (allClose (probeOut.narrow (1L, 3L, k)) fresh 1e-9) $"train: new channels = their input (max diff {maxAbsDiff (probeOut.narrow (1L, 3L, k)) fresh})"
            Expect.isFalse (allClose fresh (torch.zeros_like fresh) 1e-3) "the new channels carry a signal (else the checks are empty)"
        }

        test "growth the reference gets wrong: the same conv twice with bias, l then l−1 and the reverse, stride 2; each then forwards and trains" {
            let layers = [ conv 2 3 1 1 1 true false "tanh" "none"; conv 2 3 2 1 1 true false "tanh" "none"; conv 2 3 1 1 1 true false "tanh" "none" ]
            use x = images 62L 16L 1L 10L
            use y = labels 63L 16L 3L
            let trainsAfter (net: Network) (label: string) =
                let opt = Sgd ((fun () -> net.Parameters), 0.9, 0.0) :> IOptimizer
                let l0 = Training.trainStep net opt 0.01 x y
                opt.AfterGrowth ()
                let l1 = Training.trainStep net opt 0.01 x y
                use out = forward net x
                Expect.isTrue (isFinite out && System.Double.IsFinite l0 && System.Double.IsFinite l1) $"{label}: forward and training steps finite"
            let grow (net: Network) (j: int) (stats: JunctionStatistics) =
                use p = tiny.Propose (GrowthRequest (stats, net.Junctions[j], 2, options 0.0 true, null))
                (Candidate.apply net j p stats 0.5).Commit ()
                p.Count
            // The same conv (junction 0's A, with a bias) grown twice, statistics retaken between.
            do
                use net = cnn 61L f64 [| 1L; 10L; 10L |] layers "gap" 3
                let first = (use s = (StatisticsPass.statisticsPass net x y 16L)[0] in grow net 0 s)
                let second = (use s = (StatisticsPass.statisticsPass net x y 16L)[0] in grow net 0 s)
                Expect.equal net.Widths[0] (2 + first + second) "grown twice"
                let ps = net.Junctions[0].A.Parameters |> Seq.toArray
                Expect.equal ps[1].shape[0] (int64 (2 + first + second)) "bias grew with the weight"
                Expect.equal (net.Junctions[0].B.InputWidth) (2 + first + second) "B's inputs grew twice"
                trainsAfter net "same conv twice"
            // Conv l (junction 1) then conv l−1 (junction 0), from one set of statistics.
            do
                use net = cnn 61L f64 [| 1L; 10L; 10L |] layers "gap" 3
                let stats = StatisticsPass.statisticsPass net x y 16L
                let k1 = grow net 1 stats[1]
                let k0 = grow net 0 stats[0]
                stats |> Array.iter (fun s -> s.Dispose ())
                Expect.equal net.Widths[0..1] [| 2 + k0; 2 + k1 |] "both grew"
                trainsAfter net "l then l−1"
            // The reverse: junction 1's proposal predates junction 0's growth, so conv 1's new rows
            // give conv 1's newest input channels zero weight.
            do
                use net = cnn 61L f64 [| 1L; 10L; 10L |] layers "gap" 3
                let stats = StatisticsPass.statisticsPass net x y 16L
                let k0 = grow net 0 stats[0]
                let k1 = grow net 1 stats[1]
                stats |> Array.iter (fun s -> s.Dispose ())
                let w1 = Seq.head net.Junctions[1].A.Parameters
                Expect.equal w1.shape [| int64 (2 + k1); int64 (2 + k0); 3L; 3L |] "conv 1: new outputs and new inputs"
                Expect.equal (maxAbs (w1.narrow(0L, 2L, int64 k1).narrow (1L, 2L, int64 k0))) 0.0 "inputs added since the statistics: zero weight"
                trainsAfter net "l−1 then l"
        }

        test "a junction's growth leaves the statistics of junctions sharing no layer with it: every other ResNet block, not an MLP's or CNN's next junction" {
            use resnet = Network.Build (blockKinds, layerKinds, ModelOptions (Preset = "resnet20", WidthFraction = 0.125), [| 1L; 28L; 28L |], 10, torch.CPU, torch.ScalarType.Float32, null)
            let n = resnet.Junctions.Length
            Expect.equal n 9 "nine in-block junctions"
            for j in 0 .. n - 1 do
                for k in 0 .. n - 1 do
                    Expect.equal (Growth.unaffectedBy resnet j k) (j <> k) $"ResNet-20 junctions {j}, {k}"
            use chain = mlp 91L torch.ScalarType.Float32 6 [ 2; 2; 2 ] "tanh" 3
            Expect.equal chain.Junctions.Length 3 "three junctions"
            Expect.isFalse (Growth.unaffectedBy chain 0 1) "junction 0 widens junction 1's input"
            Expect.isFalse (Growth.unaffectedBy chain 1 0) "junction 1 widens junction 0's B's output"
            Expect.isTrue (Growth.unaffectedBy chain 0 2) "junctions 0 and 2 share no layer"
            Expect.isFalse (Growth.unaffectedBy chain 1 1) "a junction and itself"
        }

        test "with shared statistics a ResNet-20 step takes one statistics pass for its nine junctions; without, one more after each junction that grows" {
            let passes (shared: bool) =
                use g = new torch.Generator (77UL)
                use net = Network.Build (blockKinds, layerKinds, ModelOptions (Preset = "resnet20", WidthFraction = 0.125), [| 1L; 8L; 8L |], 4, torch.CPU, torch.ScalarType.Float64, g)
                use x = images 78L 128L 1L 8L
                use y = labels 79L 128L 4L
                use hx = images 80L 128L 1L 8L
                use hy = labels 81L 128L 4L
                let options = GrowthOptions (StatisticsFrom = "pass", SharedStatistics = shared, NeuronsPerStep = 2, RelativeThreshold = 0.0, EigenCutoff = 1e-10, UseDelta = false)
                let events = Growth.step net tiny options g 0 x y hx hy
                Expect.equal (events |> List.map (fun e -> e.Junction)) [ 0 .. 8 ] $"shared {shared}: the nine junctions in order"
                let taken = events |> List.filter (fun e -> e.StatisticsSeconds > 0.0) |> List.map (fun e -> e.Junction)
                let grewBeforeLast = events |> List.filter (fun e -> e.Added > 0 && e.Junction < 8) |> List.map (fun e -> e.Junction)
                taken, grewBeforeLast
            let taken, _ = passes true
            Expect.equal taken [ 0 ] "shared: one pass, with junction 0"
            let taken, grew = passes false
            Expect.isNonEmpty grew "some junction before the last grew (else both take one pass)"
            // A pass for junction 0, then one for the junction after each that grew.
            Expect.equal taken (0 :: (grew |> List.map (fun j -> j + 1)) |> List.distinct) "per junction: a pass after each growth"
        }

        test "ResNet-18 (CIFAR form, 10 classes) has 11,173,962 parameters at full width" {
            use net = Network.Build (blockKinds, layerKinds, ModelOptions (Preset = "resnet18", WidthFraction = 1.0), [| 3L; 32L; 32L |], 10, torch.CPU, torch.ScalarType.Float32, null)
            Expect.equal net.ParameterCount 11173962L "torchvision-style CIFAR ResNet-18"
            Expect.equal net.Widths [| 64; 64; 128; 128; 256; 256; 512; 512 |] "inner widths at their maxima"
        }

        test "ResNet-20 (He et al. 2016, CIFAR): 272,474 parameters at full width (1×1 shortcuts), 2/4/8 at 1/8, widths block by block" {
            use net = Network.Build (blockKinds, layerKinds, ModelOptions (Preset = "resnet20", WidthFraction = 1.0), [| 3L; 32L; 32L |], 10, torch.CPU, torch.ScalarType.Float32, null)
            Expect.equal net.ParameterCount 272474L "three stages of three BasicBlocks, 16/32/64, 1×1 projection shortcuts"
            use small = Network.Build (blockKinds, layerKinds, ModelOptions (Preset = "resnet20", WidthFraction = 0.125), [| 1L; 28L; 28L |], 10, torch.CPU, torch.ScalarType.Float32, null)
            Expect.equal small.Widths [| 2; 2; 2; 4; 4; 4; 8; 8; 8 |] "inner widths from 1/8 on Fashion-MNIST's 1×28×28"
            let given = ModelOptions (Preset = "resnet20", InnerWidths = ResizeArray [ 3; 4; 5; 6; 7; 8; 9; 10; 11 ], InnerMaxWidths = ResizeArray [ 3; 16; 16; 6; 32; 32; 9; 64; 64 ])
            use fixedAt = Network.Build (blockKinds, layerKinds, given, [| 1L; 28L; 28L |], 10, torch.CPU, torch.ScalarType.Float32, null)
            Expect.equal fixedAt.Widths [| 3 .. 11 |] "Model:InnerWidths, block by block"
            Expect.equal [| for j in fixedAt.Junctions -> j.MaxWidth |] [| 3; 16; 16; 6; 32; 32; 9; 64; 64 |] "Model:InnerMaxWidths"
            let problems (o: ModelOptions) = ModelPlan.problems blockKinds o [| 1L; 28L; 28L |] 10
            Expect.stringContains (String.concat " " (problems (ModelOptions (Preset = "resnet20", InnerWidths = ResizeArray [ 2; 2 ])))) "lists 2 widths; preset resnet20 has 9 blocks" "a wrong count is named"
            Expect.stringContains (String.concat " " (problems (ModelOptions (Preset = "resnet20", InnerMaxWidths = ResizeArray [ 16; 16; 17; 32; 32; 32; 64; 64; 64 ])))) "Model:InnerMaxWidths:2 = 17" "a width above its stage's is named"
        }

        test "ResNet-18 at 1/64: forward, backward, a growth step; γ = 0 keeps the function; save/load keeps it too" {
            use g = new torch.Generator (71UL)
            // 16×16 images (4 stages still leave a 2×2 map) keep this test to seconds.
            use net = Network.Build (blockKinds, layerKinds, ModelOptions (Preset = "resnet18"), [| 3L; 16L; 16L |], 10, torch.CPU, torch.ScalarType.Float32, g)
            Expect.equal net.Widths [| 1; 1; 2; 2; 4; 4; 8; 8 |] "inner widths 1/2/4/8"
            use x = torch.randn ([| 24L; 3L; 16L; 16L |], generator = g)
            use y = labels 72L 24L 10L
            let opt = Sgd ((fun () -> net.Parameters), 0.9, 0.0) :> IOptimizer
            let loss = Training.trainStep net opt 0.05 x y
            Expect.isTrue (System.Double.IsFinite loss) "a training step"
            // Round-robin step 0 grows the first block only: a stage-4 junction's S2 is 4,608² (512
            // residual channels × 3×3), whose float64 eigh alone takes seconds.
            let options = GrowthOptions (NeuronsPerStep = 2, RelativeThreshold = 0.0, Selection = "roundrobin")
            use stats = (StatisticsPass.statisticsFor [| 0 |] 0 null net (x.narrow (0L, 0L, 16L)) (y.narrow (0L, 0L, 16L)) 16L)[0]
            use proposal = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 2, options, null))
            use before = forward net x
            (Candidate.apply net 0 proposal stats 0.0).Commit ()
            use atZero = forward net x
            Expect.isTrue (identical atZero before) "γ = 0: outputs bit-identical"
            let events = Growth.step net tiny options null 0 (x.narrow (0L, 0L, 16L)) (y.narrow (0L, 0L, 16L)) (x.narrow (0L, 16L, 8L)) (y.narrow (0L, 16L, 8L))
            Expect.equal events.Length 1 "one junction grown"
            Expect.equal net.Widths[1..] [| 1; 2; 2; 4; 4; 8; 8 |] "the other blocks unchanged"
            Expect.equal net.Widths[0] (1 + events.Head.Added) "block 1 grew by what its event says"
            opt.AfterGrowth ()
            Expect.isTrue (System.Double.IsFinite (Training.trainStep net opt 0.05 x y)) "trains after growth"
            withTempFolder (fun dir ->
                ModelFile.save net [| 3L; 16L; 16L |] 10 dir
                use loaded = ModelFile.load blockKinds layerKinds dir torch.CPU
                Expect.equal loaded.Widths net.Widths "widths saved"
                use expected = forward net x
                use fromFile = forward loaded x
                Expect.isTrue (identical fromFile expected) "eval outputs identical after save/load (BN buffers included)")
        }

        test "a CNN saved and loaded computes the same outputs" {
            use net = cnn 81L torch.ScalarType.Float32 [| 1L; 12L; 12L |] [ conv 2 3 1 1 1 false true "relu" "max2"; conv 3 3 1 1 1 false true "relu" "none"; denseSpec 4 ] "gap" 5
            use x = (images 82L 6L 1L 12L).to_type torch.ScalarType.Float32
            use y = labels 83L 6L 5L
            let opt = Sgd ((fun () -> net.Parameters), 0.9, 0.0) :> IOptimizer
            Training.trainStep net opt 0.05 x y |> ignore // moves the BN running statistics away from 0/1
            withTempFolder (fun dir ->
                ModelFile.save net [| 1L; 12L; 12L |] 5 dir
                use loaded = ModelFile.load blockKinds layerKinds dir torch.CPU
                use expected = forward net x
                use fromFile = forward loaded x
                Expect.isTrue (identical fromFile expected) "identical eval outputs")
        }
    ]
