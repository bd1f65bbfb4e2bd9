/// New units "unit" (DESIGN §4.7, Core/NewUnits.fs) on conv → BatchNorm → ReLU → conv: the
/// prediction is the exact first derivative of the loss in γ, the BatchNorm channel is the intended
/// unit-scale feature in train and eval mode, and a new unit's gradient is of the order of an
/// existing unit's (which it is not with the fan-in and BatchNorm channel scaled by γ).
module TinyGrow.Tests.NewUnitsTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Growth.Conv
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures
open TinyGrow.Tests.ConvTests

/// conv(3) → BN → relu → conv(4) → BN → relu → GAP → dense(2) → 3 logits, float64, 8×8 inputs.
let private network () =
    cnn 301L f64 [| 2L; 8L; 8L |] [ conv 3 3 1 1 1 false true "relu" "none"; conv 4 3 1 1 1 false true "relu" "none"; denseSpec 2 ] "gap" 3

/// Options of these tests: unit new units, exact pseudo-inverses.
let private unitOptions (useDelta: bool) = GrowthOptions (RelativeThreshold = 0.0, UseDelta = useDelta, EigenCutoff = 1e-10, NewUnits = "unit")

/// Statistics of junction 0 over (x, y) in one batch, every row kept in the row sample (so that the
/// refit's expectations are the data's, not a sample's).
let private statisticsKeepingAll (net: Network) (x: torch.Tensor) (y: torch.Tensor) =
    (StatisticsPass.statisticsWith (fun _ -> 1_000_000) (fun _ -> null) 0 [| 0 |] 0 null net x y x.shape[0])[0]

/// The strategy's proposal for junction 0, adapted as the engine adapts it.
let private unitProposal (net: Network) (stats: JunctionStatistics) (options: GrowthOptions) (k: int) =
    use raw = tiny.Propose (GrowthRequest (stats, net.Junctions[0], k, options, null))
    match NewUnits.adapt options net.Junctions[0] stats raw with
    | Some p -> p
    | None -> failwith "NewUnits.adapt did not apply to a conv → BatchNorm junction"

/// Mean loss on one batch, BatchNorm in train mode without touching running statistics (what the
/// statistics pass differentiated and what the γ search measures).
let private probeLoss (net: Network) (x: torch.Tensor) (y: torch.Tensor) =
    use _ = torch.no_grad ()
    use logits = net.Forward (x, ForwardPass.Probe)
    use loss = torch.nn.functional.cross_entropy (logits, y)
    loss.ToDouble ()

/// ‖∂L/∂θ‖ of each of A's output channels k (its fan-in row, BatchNorm weight and bias, and its fan-out
/// column in B) on one batch in train mode.
let private unitGradientNorms (net: Network) (x: torch.Tensor) (y: torch.Tensor) =
    let block = net.Blocks[0] :?> CnnBlock
    let a, norm, b = block.Stages[0].Conv :> IGrowableLayer, block.Stages[0].Norm.Value :> IGrowingNorm, block.Stages[1].Conv :> IGrowableLayer
    use logits = net.Forward (x, ForwardPass.Probe)
    use loss = torch.nn.functional.cross_entropy (logits, y)
    loss.backward ()
    use _ = torch.no_grad ()
    let gradOf (p: Modules.Parameter) = match p.grad with null -> failwith "no gradient" | g -> g
    let wa, wb = gradOf a.Parameters[0], gradOf b.Parameters[0]
    let gn, bn = gradOf norm.Parameters[0], gradOf norm.Parameters[1]
    [| for k in 0L .. wa.shape[0] - 1L do
         use fanIn = wa[k].square().sum ()
         use fanOut = wb.select(1L, k).square().sum ()
         let s = fanIn.ToDouble () + fanOut.ToDouble () + (gn[k].ToDouble () ** 2.0) + (bn[k].ToDouble () ** 2.0)
         yield sqrt s |]

/// Labels a small CNN can learn: the class of the largest of (mean of channel 0, mean of channel 1,
/// minus their sum), so that growth finds signal on held-out samples too.
let private learnableLabels (x: torch.Tensor) =
    use m = x.mean ([| 2L; 3L |])                  // n×2
    use total = m.sum (1L, true)
    use third = total.neg ()
    use scores = torch.cat ([| m; third |], 1L)
    scores.argmax 1L

let tests =
    testList "new units (unit scale, fan-out refit)" [
        test "a cross-validated prediction carries its standard error: sd/√folds of the folds' slopes, γ times it at γ; none without folds" {
            use net = network ()
            use x = images 321L 256L 2L 8L
            use y = learnableLabels x
            let options = unitOptions false
            let keep = fun (_: int) -> NewUnits.sampleRowsFor options net.Junctions[0]
            // Four batches of 64: four folds of whole batches.
            use stats = (StatisticsPass.statisticsWith keep (fun _ -> null) 0 [| 0 |] 0 null net x y 64L)[0]
            use raw = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 2, options, null))
            use proposal = (NewUnits.adapt options net.Junctions[0] stats raw).Value
            // The folds' slopes again, from the same row sample and the same fold of each row (its batch), and
            // their standard error by hand.
            let rows = match stats.RowSample with NonNull r -> r | Null -> failwith "no row sample"
            let batches = match stats.RowSampleBatches with NonNull b -> (use c = b.cpu () in c.data<int64>().ToArray ()) | Null -> failwith "no batches"
            Expect.equal (Array.distinct batches |> Array.sort) [| 0L; 1L; 2L; 3L |] "rows from four batches"
            let cv = NewUnits.crossValidate net.Junctions[0] stats (NewUnits.sampleOf rows) (batches |> Array.map int) 4 false raw.Count false
                                            (NewUnits.existingRowNorm net.Junctions[0].A) options.EigenCutoff
            let slopes = cv.Slopes |> Array.map (fun s -> s[raw.Count])
            let mean = Array.average slopes
            let sd = sqrt ((slopes |> Array.sumBy (fun v -> (v - mean) ** 2.0)) / 3.0)
            Expect.floatClose Accuracy.veryHigh proposal.DecreaseStandardError (sd / 2.0) "standard error: sd of the 4 folds' slopes / √4"
            Expect.isGreaterThan proposal.DecreaseStandardError 0.0 "the folds differ"
            Expect.floatClose Accuracy.veryHigh (proposal.PredictedDecrease 1.0) (max 0.0 mean) "the prediction is the folds' mean slope (clipped at 0)"
            Expect.floatClose Accuracy.veryHigh (proposal.PredictedDecreaseError 3.0) (3.0 * proposal.DecreaseStandardError) "linear in γ, as the prediction"
            // One batch: no folds, an in-sample prediction, and no standard error.
            use one = statisticsKeepingAll net x y
            use rawOne = tiny.Propose (GrowthRequest (one, net.Junctions[0], 2, options, null))
            use inSample = (NewUnits.adapt options net.Junctions[0] one rawOne).Value
            Expect.isTrue (System.Double.IsNaN inSample.DecreaseStandardError) "one batch: NaN"
            Expect.isTrue (System.Double.IsNaN rawOne.DecreaseStandardError) "a strategy's own proposal: NaN unless it sets one"
        }

        test "the cross-validation fits tiny's procedure: on the same rows its directions are tiny's (projected N, δ not applied), not those of the unprojected −g" {
            use net = network ()
            use x = images 324L 96L 2L 8L
            use y = learnableLabels x
            let options = unitOptions false
            use stats = statisticsKeepingAll net x y
            let k = 2
            use raw = tiny.Propose (GrowthRequest (stats, net.Junctions[0], k, options, null))
            Expect.equal raw.Count k "tiny proposes k neurons"
            let rows = match stats.RowSample with NonNull r -> r | Null -> failwith "no row sample"
            let sample = NewUnits.sampleOf rows
            Expect.equal sample.B.shape[0] (96L * 64L) "every row of the batch is in the row sample"
            let cutoff = Bottleneck.effectiveCutoff options.EigenCutoff stats stats.S2.shape[0]
            use whitening = LinearAlgebra.psdFactor stats.S2 cutoff
            let hasBias = net.Junctions[0].A.HasBias
            let delta, fanIn = NewUnits.fitOn sample whitening false k hasBias 1.0 options.EigenCutoff
            Expect.isTrue (isNull delta) "δ is not applied"
            // |cos| of row k of two fan-ins (bias entry excluded), directions being defined up to sign.
            let cosines (a: torch.Tensor) (b: torch.Tensor) =
                let d = a.shape[1] - (if hasBias then 1L else 0L)
                use an = NewUnits.rescaledFanIn a hasBias 1.0
                use bn = NewUnits.rescaledFanIn b hasBias 1.0
                use dots = (an.narrow (1L, 0L, d) * bn.narrow (1L, 0L, d)).sum (1L)
                use c = dots.abs().cpu () in c.data<float>().ToArray ()
            for c in cosines fanIn raw.FanIn do
                Expect.isGreaterThan c (1.0 - 1e-8) $"the same direction as tiny's (|cos| = {c})"
            // The unprojected desired update gives other directions here: the test can tell the two apart.
            use n = sample.BT.t().mm (sample.G.neg ())
            let unprojected = Bottleneck.take k (Bottleneck.neuronDirectionsWith whitening n)
            Expect.isLessThan (Array.min (cosines unprojected.FanIn raw.FanIn)) 0.99 "the unprojected −g's directions differ from tiny's"
        }

        test "a growth event's predicted_decrease_error is the proposal's at the chosen γ, NaN when nothing was added" {
            use net = network ()
            use x = images 322L 256L 2L 8L
            use y = learnableLabels x
            use heldX = images 323L 256L 2L 8L
            use heldY = learnableLabels heldX
            let options = unitOptions false
            use stats = (StatisticsPass.statisticsWith (fun _ -> NewUnits.sampleRowsFor options net.Junctions[0]) (fun _ -> null) 0 [| 0 |] 0 null net x y 64L)[0]
            use raw = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 2, options, null))
            use proposal = (NewUnits.adapt options net.Junctions[0] stats raw).Value
            let e = GammaSearch.growJunction net 0 proposal stats heldX heldY
            Expect.isGreaterThan e.Added 0 $"neurons added (γ = {e.Gamma})"
            Expect.floatClose Accuracy.veryHigh e.PredictedDecreaseError (e.Gamma * proposal.DecreaseStandardError) "γ·SE at the chosen γ"
            // A proposal of no neurons adds nothing: no error to report.
            use empty = new NeuronProposal (torch.zeros ([| 0L; proposal.FanIn.shape[1] |], dtype = torch.float64), torch.zeros ([| proposal.FanOut.shape[0]; 0L |], dtype = torch.float64),
                                            null, 0.0, [||], 1.0, 0.0, FanOutAmplitude = true, DecreaseStandardError = 1.0)
            let none = GammaSearch.growJunction net 0 empty stats heldX heldY
            Expect.equal none.Added 0 "nothing added"
            Expect.isTrue (System.Double.IsNaN none.PredictedDecreaseError) "NaN when nothing was added"
        }

        test "finite differences: the prediction is the derivative of the loss in γ (p = 1), with and without δ" {
            for useDelta in [ false; true ] do
                use net = network ()
                use x = images 302L 24L 2L 8L
                use y = labels 303L 24L 3L
                use stats = statisticsKeepingAll net x y
                let options = unitOptions useDelta
                use proposal = unitProposal net stats options 2
                Expect.equal proposal.AmplitudePower 1 "unit proposals are linear in γ"
                Expect.isTrue proposal.FanOutAmplitude "marked FanOutAmplitude"
                let l0 = probeLoss net x y
                let predicted = proposal.PredictedDecrease 1.0
                Expect.isGreaterThan predicted 1e-6 $"a decrease is predicted (δ {useDelta})"
                let measuredRate gamma =
                    let applied = Candidate.apply net 0 proposal stats gamma
                    try (l0 - probeLoss net x y) / gamma finally Candidate.undo applied
                let errors = [ for gamma in [ 1e-1; 1e-2; 1e-3 ] -> abs (measuredRate gamma - predicted) / predicted ]
                // The remainder is O(γ): it shrinks about tenfold per decade of γ (a wrong slope would leave a constant).
                Expect.isLessThan errors[2] 1e-4 $"(L(0) − L(γ))/γ → predicted(1) (δ {useDelta}; relative errors {errors})"
                Expect.isLessThan errors[2] (errors[0] * 0.05 + 1e-10) $"the error is first order in γ (δ {useDelta}; {errors})"
        }

        test "the refit fan-out is the least-squares one: no fan-out nearby predicts more at first order" {
            use net = network ()
            use x = images 304L 24L 2L 8L
            use y = labels 305L 24L 3L
            use stats = statisticsKeepingAll net x y
            let options = unitOptions false
            use proposal = unitProposal net stats options 2
            let l0 = probeLoss net x y
            let rate (p: NeuronProposal) =
                let gamma = 1e-5
                let applied = Candidate.apply net 0 p stats gamma
                try (l0 - probeLoss net x y) / gamma finally Candidate.undo applied
            let best = rate proposal
            // Without δ, the first-order rate is ⟨ω, E[v h]⟩ with ω = S_h⁻¹E[h v]: any other ω of the same
            // S_h-norm predicts less. Compare against the refit ω rotated a little in a random direction.
            use noise = torch.randn_like proposal.FanOut
            use other = proposal.FanOut + noise * (0.2 * maxAbs proposal.FanOut)
            use otherProposal = new NeuronProposal (proposal.FanIn.clone (), other.clone (), null, 0.0, proposal.NeuronScores, 1.0, 0.0, FanOutAmplitude = true)
            // Least squares ω* = S_h⁻¹E[h v] maximises ⟨ω, E[h v]⟩ / √(ωᵀS_hω) (Cauchy–Schwarz in the S_h
            // metric): the first-order rate per size of the change ωh it makes. Both measured on the network.
            let normOfChange (p: NeuronProposal) =
                let applied = Candidate.apply net 0 p stats 1.0
                try
                    use _ = torch.no_grad ()
                    let block = net.Blocks[0] :?> CnnBlock
                    use bIn = (block.Stages[0].Norm.Value.Forward ((block.Stages[0].Conv :> IGrowableLayer).Forward x, ForwardPass.Probe)).relu ()
                    use fresh = bIn.narrow (1L, 3L, int64 p.Count)
                    let w = p.FanOut
                    // B's new columns (centre taps) applied to the new channels: ω h at every position.
                    use change = torch.einsum ("ok,nkhw->nohw", w.to_type (fresh.dtype), fresh)
                    use sq = change.square().sum ()
                    sqrt (sq.ToDouble () / float x.shape[0])
                finally Candidate.undo applied
            let efficiency (p: NeuronProposal) = rate p / normOfChange p
            Expect.isGreaterThan (efficiency proposal) (efficiency otherProposal) "the refit ω lowers the loss most per size of the change it makes"
            Expect.isGreaterThan best 0.0 "and it lowers the loss"
        }

        test "BatchNorm: new channels are unit-scale features in train mode, the same function in eval mode, and the candidate's eval output is the grown network's" {
            use net = network ()
            use x = images 306L 24L 2L 8L
            use y = labels 307L 24L 3L
            use stats = statisticsKeepingAll net x y
            use proposal = unitProposal net stats (unitOptions true) 2
            let k = int64 proposal.Count
            Expect.isGreaterThan k 0L "neurons proposed"
            let applied = Candidate.apply net 0 proposal stats 0.3
            use candidateEval = (use _ = torch.no_grad () in net.Forward (x, ForwardPass.Evaluation))
            applied.Commit ()
            use grownEval = (use _ = torch.no_grad () in net.Forward (x, ForwardPass.Evaluation))
            Expect.isTrue (identical candidateEval grownEval) "the candidate evaluated in the search is the grown network (eval mode, bit for bit)"
            let block = net.Blocks[0] :?> CnnBlock
            use _ = torch.no_grad ()
            use z = (block.Stages[0].Conv :> IGrowableLayer).Forward x
            use fresh = z.narrow (1L, 3L, k)
            use train = (block.Stages[0].Norm.Value.Forward (z, ForwardPass.Probe)).narrow (1L, 3L, k)
            use eval = (block.Stages[0].Norm.Value.Forward (z, ForwardPass.Evaluation)).narrow (1L, 3L, k)
            // Intended: (z − μ)/√(σ² + ε) with the moments measured over the data (here the whole batch).
            use mean = fresh.mean ([| 0L; 2L; 3L |], true)
            use var = fresh.var ([| 0L; 2L; 3L |], false, true)
            use intended = (fresh - mean) / (var + 1e-5).sqrt ()
            Expect.isTrue (allClose train intended 1e-9) $"train mode: the unit-scale feature (max diff {maxAbsDiff train intended})"
            Expect.isTrue (allClose eval intended 1e-9) $"eval mode: the same function, from running statistics (max diff {maxAbsDiff eval intended})"
            use rms = intended.square().mean ()
            Expect.floatClose Accuracy.low (rms.ToDouble ()) 1.0 "unit scale: mean square 1"
            // A's new rows sit at the existing rows' norm, not at γ·|α|.
            let w = (block.Stages[0].Conv :> IGrowableLayer).Parameters[0] :> torch.Tensor
            use norms = w.reshape(w.shape[0], -1L).norm (1)
            use existingMedian = (norms.narrow (0L, 0L, 3L)).median ()
            for i in 3L .. norms.shape[0] - 1L do
                Expect.floatClose Accuracy.medium (norms[i].ToDouble ()) (existingMedian.ToDouble ()) $"new row {i} at the existing rows' median norm"
        }

        test "cross-validation (NewUnitsCount = crossvalidated): on labels with no signal the in-sample prediction is noise and no neuron is kept; with signal, the held-out slope is what it predicts" {
            let run (labelsOf: int64 -> torch.Tensor -> torch.Tensor) (seed: int64) =
                use net = network ()
                use x = images (seed + 1L) 512L 2L 8L
                use y = labelsOf (seed + 2L) x
                use heldX = images (seed + 3L) 2048L 2L 8L
                use heldY = labelsOf (seed + 4L) heldX
                let options = unitOptions true
                options.NewUnitsCount <- "crossvalidated"
                // Eight batches of 64: eight folds of whole batches.
                use stats = (StatisticsPass.statisticsWith (fun _ -> 1_000_000) (fun _ -> null) 0 [| 0 |] 0 null net x y 64L)[0]
                use raw = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 4, options, null))
                let inSample =
                    // The same proposal without folds (one batch's rows): the in-sample prediction.
                    use one = (StatisticsPass.statisticsWith (fun _ -> 1_000_000) (fun _ -> null) 0 [| 0 |] 0 null net x y 512L)[0]
                    use rawOne = tiny.Propose (GrowthRequest (one, net.Junctions[0], 4, options, null))
                    use p = (NewUnits.adapt options net.Junctions[0] one rawOne).Value
                    p.PredictedDecrease 1.0 - p.DeltaDecrease, p.PredictedDecrease 1.0
                let inSample, inSampleTotal = inSample
                use proposal = (NewUnits.adapt options net.Junctions[0] stats raw).Value
                let l0 = probeLoss net heldX heldY
                let gamma = 1e-3
                let measured =
                    let applied = Candidate.apply net 0 proposal stats gamma
                    try (l0 - probeLoss net heldX heldY) / gamma finally Candidate.undo applied
                proposal.Count, inSample, inSampleTotal, proposal.PredictedDecrease 1.0, measured
            // Random labels: whatever lowers this loss in-sample is noise.
            for seed in [ 400L; 410L; 420L ] do
                let count, neurons, inSample, predicted, measured = run (fun s x -> labels s x.shape[0] 3L) seed
                Expect.equal count 0 $"random labels, seed {seed}: no neuron survives the cross-validation (in-sample they predicted {neurons:g3})"
                Expect.isGreaterThan inSample (3.0 * abs measured) $"in-sample, the prediction ({inSample:g3}) is noise: over 3× the held-out change ({measured:g3})"
                Expect.isLessThan (abs predicted) (inSample / 3.0) $"cross-validated, it is not ({predicted:g3})"
            // Learnable labels: the cross-validated prediction is the held-out slope.
            for seed in [ 430L; 440L; 450L ] do
                let count, _, _, predicted, measured = run (fun _ x -> learnableLabels x) seed
                Expect.isGreaterThan count 0 $"learnable labels, seed {seed}: neurons kept"
                Expect.isTrue (measured / predicted > 0.5 && measured / predicted < 2.0) $"held-out slope {measured:g3} against the cross-validated prediction {predicted:g3}"
        }

        test "the fan-out bound: after a search, no new fan-out column exceeds AmplitudeSpread × the median existing column" {
            use net = network ()
            use x = images 320L 256L 2L 8L
            use y = learnableLabels x
            use heldX = images 321L 256L 2L 8L
            use heldY = learnableLabels heldX
            let options = GrowthOptions (RelativeThreshold = 0.0, UseDelta = false, EigenCutoff = 1e-10, NewUnits = "unit")
            use stats = (StatisticsPass.statisticsWith (fun _ -> 4096) (fun _ -> null) 0 [| 0 |] 0 null net x y 32L)[0]
            use raw = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 2, options, null))
            use proposal = (NewUnits.adapt options net.Junctions[0] stats raw).Value
            let existing = NewUnits.existingColumnNorm net.Junctions[0].B
            let ratio = 0.5
            let bound = NewUnits.fanOutBound ratio net.Junctions[0] proposal
            Expect.isTrue (bound > 0.0 && System.Double.IsFinite bound) $"a finite bound ({bound})"
            let e = GammaSearch.growJunctionWithin ratio net 0 proposal stats heldX heldY
            Expect.isLessThanOrEqual e.Gamma (bound * (1.0 + 1e-12)) "γ within the bound"
            Expect.floatClose Accuracy.high e.GammaBound bound "the event reports it"
            Expect.isGreaterThan e.Added 0 "neurons added (else the columns are not checked)"
            let w = net.Junctions[0].B.Parameters[0] :> torch.Tensor
            use fresh = w.narrow (1L, 3L, int64 e.Added)
            use norms = fresh.transpose(0L, 1L).reshape(int64 e.Added, -1L).norm (1)
            Expect.isLessThanOrEqual (norms.max().ToDouble ()) (ratio * existing * (1.0 + 1e-6)) "new columns at most ratio × the existing median"
        }

        test "gradient: a new unit's gradient is of the order of an existing unit's (unit), not orders below (scaled)" {
            let ratioAfterGrowth (mode: string) =
                use net = network ()
                use x = images 308L 256L 2L 8L
                use y = learnableLabels x
                use heldX = images 310L 256L 2L 8L
                use heldY = learnableLabels heldX
                let options = GrowthOptions (RelativeThreshold = 0.0, UseDelta = true, EigenCutoff = 1e-10, NewUnits = mode)
                use stats = (StatisticsPass.statisticsWith (fun _ -> NewUnits.sampleRowsFor options net.Junctions[0]) (fun _ -> null) 0 [| 0 |] 0 null net x y 256L)[0]
                use raw = tiny.Propose (GrowthRequest (stats, net.Junctions[0], 2, options, null))
                let adapted = NewUnits.adapt options net.Junctions[0] stats raw
                let proposal = defaultArg adapted raw
                // γ as the engine chooses it: the line search on held-out samples.
                let e = GammaSearch.growJunction net 0 proposal stats heldX heldY
                adapted |> Option.iter (fun p -> p.Dispose ())
                Expect.isGreaterThan e.Added 0 $"{mode}: neurons added (γ = {e.Gamma})"
                let norms = unitGradientNorms net x y
                let existing = norms[.. 2] |> Array.sort
                let fresh = norms[3 ..]
                Array.min fresh / existing[1], Array.max fresh / existing[1]
            let unitLow, unitHigh = ratioAfterGrowth "unit"
            let scaledLow, _ = ratioAfterGrowth "scaled"
            Expect.isTrue (unitLow > 0.1 && unitHigh < 10.0) $"unit: new units' gradient norms within 10× of the existing median ({unitLow:g3}–{unitHigh:g3})"
            Expect.isLessThan scaledLow 0.1 $"scaled (γ on fan-in, fan-out and the BatchNorm channel): a new unit's gradient is over 10× below ({scaledLow:g3}); this is what the unit mode fixes"
        }
    ]
