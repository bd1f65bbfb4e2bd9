/// New units at a dense A without a normalisation (Growth:DenseNewUnits = "init", Core/NewUnits.fs): the fan-in goes to the RMS a row of
/// the dense kind's own initialisation gives, the fan-out is divided by the same factor (the same linear function),
/// γ scales the fan-out and δ only; a new unit's gradient is then of the order of an existing unit's.
module TinyGrow.Tests.DenseNewUnitsTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Tests.Fixtures

/// Inputs with uneven scales and nonzero means (6 features), and labels an MLP can learn from them.
let private data (seed: int64) (n: int64) =
    use raw = TestUtil.randn seed n 6L
    use scales = torch.tensor ([| 0.2; 0.5; 1.0; 2.0; 3.0; 0.1 |], dtype = torch.float64)
    use offsets = torch.tensor ([| 1.0; -0.5; 0.0; 0.3; 2.0; -1.0 |], dtype = torch.float64)
    let x = raw * scales + offsets
    use scores = torch.stack ([| x.select (1L, 0L) * 5.0 - x.select (1L, 3L); x.select (1L, 1L) * 2.0 + x.select (1L, 4L) * 0.5; x.select (1L, 2L) |], 1L)
    x, scores.argmax 1L

/// Per unit k of junction j's A: ‖∂L/∂(its fan-in row, bias, fan-out column)‖ on (x, y).
let private unitGradientNorms (net: Network) (j: int) (x: torch.Tensor) (y: torch.Tensor) =
    let a, b = net.Junctions[j].A, net.Junctions[j].B
    use logits = net.Forward x
    use loss = torch.nn.functional.cross_entropy (logits, y)
    loss.backward ()
    use _ = torch.no_grad ()
    let gradOf (p: Modules.Parameter) = match p.grad with null -> failwith "no gradient" | g -> g
    let wa, ba, wb = gradOf a.Parameters[0], gradOf a.Parameters[1], gradOf b.Parameters[0]
    [| for k in 0L .. wa.shape[0] - 1L do
         use fanIn = wa[k].square().sum ()
         use fanOut = wb.select(1L, k).square().sum ()
         yield sqrt (fanIn.ToDouble () + fanOut.ToDouble () + ba[k].ToDouble () ** 2.0) |]

let tests =
    testList "new units at a dense A (DenseNewUnits)" [
        test "initRms is the RMS over the statistics rows of rows drawn by the dense kind's own initialisation (20,000 drawn)" {
            use net = mlp 1201L torch.ScalarType.Float64 6 [ 3; 2 ] "tanh" 3
            let x, y = data 1202L 512L
            use x = x
            use y = y
            let stats = StatisticsPass.statisticsPass net x y 512L
            try
                // Junction 0 reads x, junction 1 the first layer's tanh features: the rows each A reads.
                for j, input in [ 0, x.alias (); 1, torch.tanh (net.Junctions[0].A.Forward x) ] do
                    use input = input
                    use g = new torch.Generator (1203UL + uint64 j)
                    use drawn = dense.Create (spec 20000 20000 "tanh" true, int input.shape[1], torch.CPU, torch.float64, g)
                    use z = drawn.Forward input
                    let empirical = sqrt ((use m = z.square().mean () in m.ToDouble ()))
                    let formula = NewUnits.initRms net.Junctions[j] stats[j]
                    // Over 20,000 rows the mean square's relative standard error is about 0.5 %: 2 % is 4 of them.
                    Expect.floatClose { absolute = 0.0; relative = 0.01 } formula empirical $"junction {j}: √(tr S2 / (3·fan_in)) = {formula:g6}, drawn rows {empirical:g6}"
            finally stats |> Array.iter (fun s -> s.Dispose ())
        }

        test "init: a dense junction's proposal takes each fan-in to initRms, keeps the linear function ω_kα_kᵀ and puts γ on the fan-out; scaled keeps the strategy's" {
            use net = mlp 1211L torch.ScalarType.Float64 6 [ 3; 2 ] "tanh" 3
            let x, y = data 1212L 512L
            use x = x
            use y = y
            let stats = StatisticsPass.statisticsPass net x y 512L
            try
                for j in 0 .. net.JunctionCount - 1 do
                    let unit = options 0.0 true
                    Expect.equal unit.DenseNewUnits "init" "the default"
                    use raw = tiny.Propose (GrowthRequest (stats[j], net.Junctions[j], 2, unit, null))
                    Expect.isGreaterThan raw.Count 0 $"junction {j}: neurons proposed"
                    use p = match NewUnits.adapt unit net.Junctions[j] stats[j] raw with Some p -> p | None -> failtest $"junction {j}: a dense A takes unit new units"
                    Expect.isTrue p.FanOutAmplitude $"junction {j}: γ on the fan-out"
                    use rms = NewUnits.fanInRms stats[j] p.FanIn
                    let target = NewUnits.initRms net.Junctions[j] stats[j]
                    for k in 0 .. p.Count - 1 do
                        Expect.floatClose Accuracy.veryHigh (rms[int64 k].ToDouble ()) target $"junction {j}, neuron {k}: fan-in RMS at the initialisation's"
                        use before = raw.FanOut.select(1L, int64 k).outer (raw.FanIn[int64 k])
                        use after = p.FanOut.select(1L, int64 k).outer (p.FanIn[int64 k])
                        Expect.isLessThan (TestUtil.maxAbsDiff after before) (1e-12 * (use m = before.abs().max () in m.ToDouble ())) $"junction {j}, neuron {k}: ω'α'ᵀ = ωαᵀ"
                    Expect.equal p.NeuronScores raw.NeuronScores $"junction {j}: the linear prediction is the strategy's"
                    Expect.isNone (NewUnits.adapt (GrowthOptions (RelativeThreshold = 0.0, UseDelta = true, EigenCutoff = 1e-10, DenseNewUnits = "scaled")) net.Junctions[j] stats[j] raw) $"junction {j}: scaled keeps the strategy's proposal"
            finally stats |> Array.iter (fun s -> s.Dispose ())
        }

        test "gradient: a new dense unit's gradient is of the order of an existing unit's at any γ (init); with γ on its fan-in too it vanishes with γ (scaled)" {
            /// (smallest, largest) new-unit gradient norm over the existing units' median, after junction 0 grows 2
            /// units at γ (NaN: the γ the search picks on held-out samples).
            let ratios (mode: string) (gamma: float) =
                use net = mlp 1221L torch.ScalarType.Float64 6 [ 4 ] "tanh" 3
                let x, y = data 1222L 512L
                use x = x
                use y = y
                let heldX, heldY = data 1223L 512L
                use heldX = heldX
                use heldY = heldY
                let opts = GrowthOptions (RelativeThreshold = 0.0, UseDelta = true, EigenCutoff = 1e-10, DenseNewUnits = mode)
                use stats = (StatisticsPass.statisticsPass net x y 512L)[0]
                use raw = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 2, opts, null))
                let adapted = NewUnits.adapt opts net.Junctions[0] stats raw
                let proposal = defaultArg adapted raw
                if System.Double.IsNaN gamma then
                    let e = GammaSearch.growJunction net 0 proposal stats heldX heldY
                    Expect.isGreaterThan e.Added 0 $"{mode}: neurons added (γ = {e.Gamma})"
                else Candidate.commit (Candidate.apply net 0 proposal stats gamma)
                adapted |> Option.iter (fun p -> p.Dispose ())
                let norms = unitGradientNorms net 0 x y
                let existing = norms[.. 3] |> Array.sort
                let median = (existing[1] + existing[2]) / 2.0
                Array.min norms[4 ..] / median, Array.max norms[4 ..] / median
            // init: the fan-in is at scale whatever γ, so the fan-out's gradient E[g·h] does not vanish with γ.
            let unitSmall, _ = ratios "init" 0.001
            let unitLarger, _ = ratios "init" 0.01
            Expect.isGreaterThan unitSmall (0.5 * unitLarger) $"init: the new units' gradient at γ = 0.001 ({unitSmall:g3} of the existing median) is that at γ = 0.01 ({unitLarger:g3}), not 10× less"
            let searchedLow, searchedHigh = ratios "init" nan
            Expect.isTrue (searchedLow > 0.1 && searchedHigh < 10.0) $"init, γ of the search: new units' gradient norms within 10× of the existing median ({searchedLow:g3}–{searchedHigh:g3})"
            // scaled: fan-in and fan-out both ∝ γ, so every gradient of the new unit is ∝ γ.
            let _, scaledSmall = ratios "scaled" 0.001
            let _, scaledLarger = ratios "scaled" 0.01
            Expect.isLessThan scaledSmall (0.2 * scaledLarger) $"scaled: the new units' gradient at γ = 0.001 ({scaledSmall:g3}) is about a tenth of that at γ = 0.01 ({scaledLarger:g3})"
            Expect.isGreaterThan unitSmall (20.0 * scaledSmall) $"at γ = 0.001 an init new unit's gradient ({unitSmall:g3}) is over 20× a scaled one's ({scaledSmall:g3})"
        }
    ]
