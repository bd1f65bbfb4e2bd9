/// Full conv mode (DESIGN §4.3): a new channel's fan-out is a whole k×k kernel of B (or one weight
/// per position after a flatten). Statistics against a float64 brute force over every tap, the
/// first-order prediction against finite differences (the layout of ω must match the statistics'
/// tap order for these to agree), γ = 0, apply against conv2d by hand, and the mode kept on save.
module TinyGrow.Tests.ConvFullTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Growth.Conv
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures
open TinyGrow.Tests.ConvTests

/// Brute-force full-mode S2, M2, P of junction 0 (conv A → conv B) from one recorded batch: for
/// every (sample, B output position p, tap t = (u, v)), b̃ is the column of F.unfold(A's input) at the
/// B-input pixel under tap t (zero with its bias entry in B's padding). S2 sums over taps; M2 and P
/// have one column block per tap: M2[:, t·out + o], P[:, t·D1 + j].
let bruteForceFull (net: Network) (x: torch.Tensor) (y: torch.Tensor) (a: LayerSpec) (b: LayerSpec) =
    let logits, records = net.ForwardRecording x
    use loss = torch.nn.functional.cross_entropy (logits, y, reduction = torch.nn.Reduction.Sum)
    let r = records[0]
    let grad = (torch.autograd.grad ([| loss |], [| r.BOutput |]))[0]
    use _ = torch.no_grad ()
    let n = x.shape[0]
    let j = net.Junctions[0]
    let ub = torch.nn.functional.unfold (r.BInput, int64 b.Kernel, int64 b.Dilation, int64 b.ResolvedPadding, int64 b.Stride)
    let bRows0 = ub.permute(0L, 2L, 1L).reshape (-1L, ub.shape[1])
    let bRows = if j.B.HasBias then torch.cat ([| bRows0; torch.ones ([| bRows0.shape[0]; 1L |], dtype = f64) |], 1L) else bRows0
    let ho, wo = grad.shape[2], grad.shape[3]
    let gRows = grad.permute(0L, 2L, 3L, 1L).reshape (-1L, grad.shape[1])
    let ua = torch.nn.functional.unfold (r.AInput, int64 a.Kernel, int64 a.Dilation, int64 a.ResolvedPadding, int64 a.Stride)
    let ha, wa = r.BInput.shape[2], r.BInput.shape[3]
    let d2 = ua.shape[1] + (if j.A.HasBias then 1L else 0L)
    let taps = int64 (b.Kernel * b.Kernel)
    let bt = torch.zeros ([| n * ho * wo; taps; d2 |], dtype = f64)
    let mutable row = 0L
    for i in 0L .. n - 1L do
        for oh in 0L .. ho - 1L do
            for ow in 0L .. wo - 1L do
                for u in 0 .. b.Kernel - 1 do
                    for v in 0 .. b.Kernel - 1 do
                        let ph = oh * int64 b.Stride - int64 b.ResolvedPadding + int64 (u * b.Dilation)
                        let pw = ow * int64 b.Stride - int64 b.ResolvedPadding + int64 (v * b.Dilation)
                        if ph >= 0L && ph < ha && pw >= 0L && pw < wa then
                            let t = int64 (u * b.Kernel + v)
                            bt[row, t].narrow(0L, 0L, ua.shape[1]).copy_ (ua[i].select (1L, ph * wa + pw)) |> ignore
                            if j.A.HasBias then bt[row, t, d2 - 1L] <- torch.tensor (1.0, dtype = f64)
                row <- row + 1L
    let nf = float n
    let s2 = torch.zeros ([| d2; d2 |], dtype = f64)
    let m2 = torch.zeros ([| d2; taps * gRows.shape[1] |], dtype = f64)
    let p = torch.zeros ([| d2; taps * bRows.shape[1] |], dtype = f64)
    for t in 0L .. taps - 1L do
        let tap = bt.select (1L, t)
        s2.add_ (tap.t().mm tap) |> ignore
        m2.narrow(1L, t * gRows.shape[1], gRows.shape[1]).copy_ (tap.t().mm gRows) |> ignore
        p.narrow(1L, t * bRows.shape[1], bRows.shape[1]).copy_ (tap.t().mm bRows) |> ignore
    bRows.t().mm bRows / nf, bRows.t().mm gRows / nf, s2 / nf, m2 / nf, p / nf

/// (L(0) − L(γ))/γ² against the exact first-order decrease Δ + σ′(0)(Σλ² − c) of junction j.
let finiteDifference (net: Network) (j: int) (stats: JunctionStatistics) (proposal: NeuronProposal) x y gamma =
    let cross = Bottleneck.crossTerm stats (nonNull proposal.Delta) (directions proposal)
    let exact = proposal.PredictedDecrease 1.0 - proposal.ActivationSlope * cross
    let fd = (Training.meanLoss net x y - lossWith net j proposal stats x y gamma) / (gamma * gamma)
    fd, exact

let tests =
    testList "conv full mode" [
        testList "full statistics equal the brute force over every tap of B's kernel" [
            for name, a, b in geometryCases ->
                test name {
                    use net = cnnWith "full" 11L f64 [| 2L; 9L; 9L |] [ a; b ] "gap" 3
                    use x = images 12L 4L 2L 9L
                    use y = labels 13L 4L 3L
                    use stats = (StatisticsPass.statisticsPass net x y 4L)[0]
                    let s, m, s2, m2, p = bruteForceFull net x y a b
                    for label, mine, brute in [ "S", stats.S, s; "M", stats.M, m; "S2", stats.S2, s2; "M2", stats.M2, m2; "P", stats.P, p ] do
                        Expect.isTrue (allClose mine brute 1e-12) $"{label}: shapes {mine.shape} vs {brute.shape}, max diff {maxAbsDiff mine brute}"
                }
        ]

        test "the centre tap's blocks of full M2 and P are restricted mode's M2 and P" {
            // Same weights (same seed), same batch: restricted b̃ is full b̃ at the centre tap.
            let a, b = conv 3 3 1 1 1 true false "tanh" "none", conv 2 3 2 1 1 true false "tanh" "none"
            use full = cnnWith "full" 41L f64 [| 2L; 9L; 9L |] [ a; b ] "gap" 3
            use restricted = cnn 41L f64 [| 2L; 9L; 9L |] [ a; b ] "gap" 3
            use x = images 42L 4L 2L 9L
            use y = labels 43L 4L 3L
            use f = (StatisticsPass.statisticsPass full x y 4L)[0]
            use r = (StatisticsPass.statisticsPass restricted x y 4L)[0]
            let out, d1 = r.M2.shape[1], r.P.shape[1]
            Expect.equal f.M2.shape [| r.M2.shape[0]; 9L * out |] "full M2 has a block per tap"
            Expect.isTrue (allClose (f.M2.narrow (1L, 4L * out, out)) r.M2 1e-12) "centre block of M2"
            Expect.isTrue (allClose (f.P.narrow (1L, 4L * d1, d1)) r.P 1e-12) "centre block of P"
            Expect.isTrue (allClose f.S r.S 0.0) "S does not depend on the mode"
        }

        test "identity σ: (L(0) − L(γ))/γ² equals Δ + Σλ² − c for whole-kernel fan-outs; γ = 0 changes nothing" {
            use net = cnnWith "full" 31L f64 [| 2L; 8L; 8L |] [ conv 3 3 1 1 1 true false "identity" "none"; conv 2 3 2 1 1 true false "identity" "none" ] "gap" 3
            use x = images 32L 20L 2L 8L
            use y = labels 33L 20L 3L
            use stats = (StatisticsPass.statisticsPass net x y 20L)[0]
            use proposal = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 10, options 0.0 true, null))
            Expect.isGreaterThan proposal.Count 0 "neurons proposed"
            Expect.equal proposal.FanOut.shape[0] (9L * 2L) "ω_k is a whole 3×3 kernel for each of B's 2 outputs"
            let fd3, exact = finiteDifference net 0 stats proposal x y 1e-3
            let fd4, _ = finiteDifference net 0 stats proposal x y 1e-4
            printfn "full conv FD: K=%d exact=%.10g FD(1e-3)=%.10g FD(1e-4)=%.10g" proposal.Count exact fd3 fd4
            // As in restricted mode: the FD's O(γ²) error and float64 cancellation are far below 1e-4.
            Expect.isLessThan (abs (fd3 - exact)) (1e-4 * abs exact) "FD(1e-3) = Δ + Σλ² − c"
            Expect.isLessThan (abs (fd4 - exact)) (1e-4 * abs exact) "FD(1e-4) = Δ + Σλ² − c"
            use before = forward net x
            (Candidate.apply net 0 proposal stats 0.0).Commit ()
            use atZero = forward net x
            Expect.isTrue (identical atZero before) "γ = 0: outputs bit-identical"
        }

        test "apply then forward equals conv2d by hand with the new channels' whole kernels" {
            let aSpec, bSpec = conv 3 3 1 1 1 true false "tanh" "none", conv 2 3 2 1 1 true false "tanh" "none"
            use net = cnnWith "full" 51L f64 [| 2L; 8L; 8L |] [ aSpec; bSpec ] "gap" 3
            use x = images 52L 20L 2L 8L
            use y = labels 53L 20L 3L
            use stats = (StatisticsPass.statisticsPass net x y 20L)[0]
            use proposal = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 4, options 0.0 true, null))
            let k = int64 proposal.Count
            Expect.isGreaterThan k 0L "neurons proposed"
            let gamma = 0.7
            use expected =
                use _ = torch.no_grad ()
                let _, records = net.ForwardRecording x
                let r = records[0]
                let ps = net.Junctions[0].B.Parameters |> Seq.map (fun p -> p :> torch.Tensor) |> Seq.toArray
                let delta = nonNull proposal.Delta
                let dW = delta.narrow(1L, 0L, 27L).reshape (2L, 3L, 3L, 3L)
                let dB = delta.narrow(1L, 27L, 1L).flatten ()
                let g2 = gamma * gamma
                let existing = torch.nn.functional.conv2d (r.BInput, ps[0] - dW * g2, ps[1] - dB * g2, [| 2L; 2L |], [| 1L; 1L |], [| 1L; 1L |])
                let alphaW = proposal.FanIn.narrow(1L, 0L, 18L).reshape (k, 2L, 3L, 3L)
                let alphaB = proposal.FanIn.narrow(1L, 18L, 1L).flatten ()
                let h = (torch.nn.functional.conv2d (r.AInput, alphaW * gamma, alphaB * gamma, [| 1L; 1L |], [| 1L; 1L |], [| 1L; 1L |])).tanh ()
                // ω_k's rows are (tap, output) tap-major: kernel [o, k, u, v] = ω_k[(u·3 + v)·2 + o].
                let kernels = proposal.FanOut.reshape(3L, 3L, 2L, k).permute (2L, 3L, 0L, 1L)
                existing + torch.nn.functional.conv2d (h, kernels * gamma, null, [| 2L; 2L |], [| 1L; 1L |], [| 1L; 1L |])
            (Candidate.apply net 0 proposal stats gamma).Commit ()
            use after =
                use _ = torch.no_grad ()
                let _, records = net.ForwardRecording x
                records[0].BOutput.clone ()
            Expect.isTrue (allClose after expected 1e-12) $"B's output after apply = by hand (max diff {maxAbsDiff after expected})"
        }

        test "flatten head, identity σ: a fan-out per position; FD equals Δ + Σλ² − c; γ = 0 changes nothing" {
            use net = cnnWith "full" 35L f64 [| 2L; 9L; 9L |] [ conv 2 3 1 1 1 true false "tanh" "none"; conv 3 3 2 1 1 true false "identity" "none"; denseSpec 4 ] "flatten" 3
            use x = images 36L 80L 2L 9L
            use y = labels 37L 80L 3L
            use stats = (StatisticsPass.statisticsFor [| 1 |] 0 null net x y 80L)[0]
            use proposal = tiny.Propose (GrowthRequest (stats, net.Junctions[1], 6, options 0.0 true, null))
            Expect.isGreaterThan proposal.Count 0 "neurons proposed"
            Expect.equal proposal.FanOut.shape[0] (25L * 4L) "ω_k has a weight per position (5×5) and dense output (4)"
            let fd3, exact = finiteDifference net 1 stats proposal x y 1e-3
            printfn "full flatten FD: K=%d exact=%.10g FD(1e-3)=%.10g" proposal.Count exact fd3
            Expect.isLessThan (abs (fd3 - exact)) (1e-4 * abs exact) "FD(1e-3) = Δ + Σλ² − c"
            use before = forward net x
            (Candidate.apply net 1 proposal stats 0.0).Commit ()
            use atZero = forward net x
            Expect.isTrue (identical atZero before) "γ = 0: outputs bit-identical"
        }

        test "GAP head: full and restricted statistics are the same (no kernel to restrict)" {
            let layers = [ conv 2 3 1 1 1 true false "tanh" "none"; conv 3 3 2 1 1 true false "tanh" "none"; denseSpec 4 ]
            use full = cnnWith "full" 61L f64 [| 2L; 9L; 9L |] layers "gap" 3
            use restricted = cnn 61L f64 [| 2L; 9L; 9L |] layers "gap" 3
            use x = images 62L 10L 2L 9L
            use y = labels 63L 10L 3L
            use f = (StatisticsPass.statisticsFor [| 1 |] 0 null full x y 10L)[0]
            use r = (StatisticsPass.statisticsFor [| 1 |] 0 null restricted x y 10L)[0]
            Expect.isEmpty (statsClose f r 0.0) "identical statistics"
        }

        test "ResNet-18 at 1/64 in full mode: a growth step keeps the function at γ = 0 and the mode is saved" {
            use g = new torch.Generator (71UL)
            use net = Network.Build (blockKinds, layerKinds, ModelOptions (Preset = "resnet18", ConvFanOut = "full"), [| 3L; 16L; 16L |], 10, torch.CPU, torch.ScalarType.Float32, g)
            use x = torch.randn ([| 24L; 3L; 16L; 16L |], generator = g)
            use y = labels 72L 24L 10L
            let options = GrowthOptions (NeuronsPerStep = 2, RelativeThreshold = 0.0, Selection = "roundrobin")
            use stats = (StatisticsPass.statisticsFor [| 0 |] 0 null net (x.narrow (0L, 0L, 16L)) (y.narrow (0L, 0L, 16L)) 16L)[0]
            Expect.equal stats.M2.shape[1] (9L * 64L) "M2: a block per tap of conv2's 3×3 kernel"
            use proposal = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 2, options, null))
            use before = forward net x
            (Candidate.apply net 0 proposal stats 0.0).Commit ()
            use atZero = forward net x
            Expect.isTrue (identical atZero before) "γ = 0: outputs bit-identical"
            let events = Growth.step net tiny options null 0 (x.narrow (0L, 0L, 16L)) (y.narrow (0L, 0L, 16L)) (x.narrow (0L, 16L, 8L)) (y.narrow (0L, 16L, 8L))
            Expect.equal net.Widths[0] (1 + events.Head.Added) "block 1 grew by what its event says"
            withTempFolder (fun dir ->
                ModelFile.save net [| 3L; 16L; 16L |] 10 dir
                use loaded = ModelFile.load blockKinds layerKinds dir torch.CPU
                Expect.equal loaded.Blocks[1].CurrentSpec.ConvFanOut "full" "the mode is saved with the block"
                use expected = forward net x
                use fromFile = forward loaded x
                Expect.isTrue (identical fromFile expected) "eval outputs identical after save/load")
        }

        test "an unknown ConvFanOut is a problem naming the key" {
            let spec = BlockSpec (Kind = "cnn", Layers = ResizeArray [ conv 2 3 1 1 1 true false "tanh" "none" ], IsOutput = true, ConvFanOut = "diagonal")
            let problems = blockKinds["cnn"].Validate (spec, [| 1L; 8L; 8L |], "Model")
            Expect.exists problems (fun p -> p.Contains "Model:ConvFanOut = 'diagonal'") $"named: {problems}"
        }
    ]
