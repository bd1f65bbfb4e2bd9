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

/// A one-block CNN over [channels, size, size] inputs.
let cnn (seed: int64) (dtype: torch.ScalarType) (inputShape: int64[]) (layers: LayerSpec list) (head: string) (classes: int) =
    use g = new torch.Generator (uint64 seed)
    let spec = BlockSpec (Kind = "cnn", Layers = ResizeArray layers, Head = head, IsOutput = true)
    let problems = (blockKinds["cnn"]).Validate (spec, inputShape, "Model")
    if problems.Count > 0 then failwithf "invalid test CNN: %A" problems
    new Network ([| blockKinds["cnn"].Create (spec, BlockContext (inputShape, classes, layerKinds, torch.CPU, dtype, g, "cnn")) |])

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
                    use stats = (Growth.statisticsPass net x y 5L)[0]
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
            use full = (Growth.statisticsPass net x y 6L)[0]
            use g = new torch.Generator (24UL)
            let draws = 200
            use sum = torch.zeros_like full.S2
            for _ in 1 .. draws do
                use s = (Growth.statisticsPassFrom 0 1 g net x y 6L)[0]
                sum.add_ s.S2 |> ignore
            use mean = sum / float draws
            // 200 draws of ~28 of 486 rows: the mean's relative error is ~1/√(200·28) ≈ 1.3 %; 10 % is
            // far outside noise for a biased estimator (missing weight would be off by 17×).
            Expect.isTrue (allClose mean full.S2 0.1) $"mean of subsampled S2 ≈ full S2 (max diff {maxAbsDiff mean full.S2}, scale {maxAbs full.S2})"
        }
    ]
