/// The amplitude bound (DESIGN §4.6, Amplitude), the bounded γ search, the committed network
/// against what the search measured, and σ′(0⁺) in the first-order prediction (GELU, SELU).
module TinyGrow.Tests.AmplitudeTests

open System
open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

/// Two classes on either side of the hyperplane x₀ + x₁ = 0, pushed 1 away from it along (1, 1):
/// a new tanh unit along x₀ + x₁ classifies them better the more it is a step function, so without
/// a bound the γ search climbs far (the loss keeps falling as γ grows: ω scales with γ too).
let private separable (seed: int64) (n: int64) (d: int64) =
    use g = randn seed n d
    use s = g.narrow(1L, 0L, 1L) + g.narrow (1L, 1L, 1L)
    use positive = s.gt (0.0.ToScalar ())
    use side = positive.to_type(f64) * 2.0 - 1.0
    use shift = torch.cat ([| side; side; torch.zeros ([| n; d - 2L |], dtype = f64) |], 1L)
    let x = g + shift
    x, positive.flatten().to_type torch.ScalarType.Int64

/// Replaces a dense layer's parameters by `scale` times themselves, with the weights of inputs 0
/// and 1 set to 0 (the old tensors are disposed).
let private shrinkAwayFromSignal (layer: IGrowableLayer) (scale: float) =
    use _ = torch.no_grad ()
    let old = Seq.toArray layer.Parameters
    let w = old[0] * scale
    w.narrow(1L, 0L, 2L).zero_ () |> ignore
    layer.Load [| w; old[1] * scale |]
    old |> Array.iter (fun p -> p.Dispose ())

/// Pre-activation RMS per channel of junction j on x.
let private spreadsNow (net: Network) (j: int) (x: torch.Tensor) =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope ()
    let _, records = net.ForwardRecording x
    Amplitude.channelRms (Amplitude.preActivations net.Junctions[j] records[j].AInput)

let tests =
    testList "amplitude" [
        test "lineSearchWithin never evaluates above the bound and lands on it when the loss falls beyond" {
            let seen = ResizeArray<float> ()
            let lossAt (g: float) = seen.Add g; (g - 40.0) ** 2.0
            let r = LineSearch.lineSearchWithin 7.0 lossAt 24
            Expect.equal r.Gamma 7.0 "the bound itself (the loss still falls there)"
            Expect.equal r.Loss (lossAt 7.0) "loss at the bound"
            Expect.isTrue (seen |> Seq.forall (fun g -> g <= 7.0)) $"no γ above 7 evaluated: %A{seen}"
            Expect.equal r.Evaluations (seen.Count - 1) "every evaluation counted (one more made here)"
            // Below 1 the grid starts at the bound and goes down from it.
            let r = LineSearch.lineSearchWithin 0.3 (fun g -> (g - 0.1) ** 2.0) 24
            Expect.isTrue (r.Gamma >= 0.1 / sqrt 2.0 && r.Gamma <= 0.1 * sqrt 2.0) $"γ = {r.Gamma} within a grid step of 0.1"
            let r = LineSearch.lineSearchWithin 0.0 (fun g -> (g - 5.0) ** 2.0) 24
            Expect.equal (r.Gamma, r.Evaluations) (0.0, 1) "bound 0: γ = 0 after one evaluation"
        }

        test "refusals in a row walk the start down: each search starts where the last gave up, until one finds the decrease" {
            // Decrease only for γ < 0.28 (minimum at 0.2), far below a start of 8.
            let lossAt (g: float) = 1.0 - g * g + (g ** 4.0) / (2.0 * 0.2 * 0.2)
            let first = LineSearch.lineSearchFrom 8.0 infinity lossAt 24
            Expect.equal (first.Gamma, first.Lowest) (0.0, 2.0) "refused after 8 → 2"
            let second = LineSearch.lineSearchFrom first.Lowest infinity lossAt 24
            Expect.equal (second.Gamma, second.Lowest) (0.0, 0.5) "refused again, 2 → 0.5"
            let third = LineSearch.lineSearchFrom second.Lowest infinity lossAt 24
            Expect.isTrue (third.Gamma > 0.14 && third.Gamma < 0.28) $"the third search accepts γ = {third.Gamma} near the minimum 0.2"
            Expect.isLessThan third.Loss (lossAt 0.0) "below L(0)"
        }

        test "below a γ₁ that does not lower the loss, the walk two grid points at a time ends where one point at a time ends, in no more evaluations" {
            // The walk down one grid point at a time (as before): the first point below L(0) within refusalSteps,
            // then down while the loss keeps falling; its γ, loss and evaluations (L(0) and γ₁ included).
            let oneAtATime (start: float) (lossAt: float -> float) =
                let l0 = lossAt 0.0
                let rec down g k evaluations =
                    if k >= LineSearch.refusalSteps then 0.0, l0, evaluations
                    else
                        let next = LineSearch.gridPoint (g / sqrt 2.0)
                        let l = lossAt next
                        if l < l0 then
                            let rec on g l evaluations =
                                let below = LineSearch.gridPoint (g / sqrt 2.0)
                                let lb = lossAt below
                                if lb < l then on below lb (evaluations + 1) else g, l, evaluations + 1
                            on next l (evaluations + 1)
                        else down next (k + 1) (evaluations + 1)
                down start 0 2
            let start = 64.0
            // Unimodal losses whose minimum lies from just under γ₁ to far below it, in γ (unit proposals) and γ².
            let mutable fewer = 0
            for opt in [ 30.0; 22.0; 16.0; 11.0; 7.0; 3.0; 0.5 ] do
                for shape, lossAt in [ "γ", (fun (g: float) -> 1.0 - 2.0 * opt * g + g * g); "γ²", (fun (g: float) -> 1.0 - g * g + (g ** 4.0) / (2.0 * opt * opt)) ] do
                    Expect.isGreaterThanOrEqual (lossAt start) (lossAt 0.0) $"{shape}, opt {opt}: γ₁ does not lower the loss"
                    let gamma, loss, evaluations = oneAtATime start lossAt
                    let r = LineSearch.lineSearchFrom start infinity lossAt 24
                    Expect.equal (r.Gamma, r.Loss) (gamma, loss) $"{shape}, opt {opt}: the one-point walk's γ"
                    Expect.isLessThanOrEqual r.Evaluations evaluations $"{shape}, opt {opt}: no more evaluations"
                    if r.Evaluations < evaluations then fewer <- fewer + 1
            Expect.isGreaterThan fewer 0 "fewer evaluations where the answer lies two grid points down or more, or nowhere"
            // A refusal: L(0), L(γ₁), L(γ₁/2), L(γ₁/4): two fewer than one point at a time.
            let flat (g: float) = 1.0 + g
            let r = LineSearch.lineSearchFrom start infinity flat 24
            let _, _, evaluations = oneAtATime start flat
            Expect.equal (r.Gamma, r.Evaluations, evaluations) (0.0, 4, 6) "refused in 4 evaluations against 6"
            // What it gives up: a loss below L(0) at γ₁/√2 but not at γ₁/2 (not below L(0) on an interval from 0) is refused.
            let odd (g: float) = if g = 0.0 then 1.0 elif abs (g - start / sqrt 2.0) < 1e-9 then 0.5 else 1.0 + g
            Expect.equal (LineSearch.lineSearchFrom start infinity odd 24).Gamma 0.0 "the point between is not evaluated"
        }

        test "a γ search started near its answer makes fewer evaluations and ends on the cold search's γ" {
            // L = 1 − γ² + γ⁴/(2·opt²): the growth regime (first-order decrease, second-order
            // penalty), unimodal in γ with its minimum at opt.
            for opt in [ 0.3; 5.0; 40.0; 300.0 ] do
                let lossAt (g: float) = 1.0 - g * g + (g ** 4.0) / (2.0 * opt * opt)
                let cold = LineSearch.lineSearchFrom nan infinity lossAt 24
                Expect.isGreaterThan cold.Gamma 0.0 $"opt {opt}: cold search adds"
                // Starts on the grid (the answer, two grid steps off either way) and off it.
                for start in [ cold.Gamma; cold.Gamma * 2.0; cold.Gamma / 2.0; cold.Gamma * 1.1 ] do
                    let warm = LineSearch.lineSearchFrom start infinity lossAt 24
                    Expect.equal warm.Gamma cold.Gamma $"opt {opt}, start {start}: the cold search's γ"
                    Expect.equal warm.Loss cold.Loss $"opt {opt}, start {start}: the same loss"
                let atAnswer = LineSearch.lineSearchFrom cold.Gamma infinity lossAt 24
                // L(0), L(γ), one step up, one step down.
                Expect.isLessThanOrEqual atAnswer.Evaluations 4 $"opt {opt}: started at the answer"
                if opt >= 5.0 then
                    Expect.isLessThan atAnswer.Evaluations (cold.Evaluations - 3) $"opt {opt}: {atAnswer.Evaluations} evaluations against the cold search's {cold.Evaluations}"
            // γ = 0 stays a choice from any start, and the upward extension is not capped by the start.
            let r = LineSearch.lineSearchFrom 8.0 infinity (fun g -> 1.0 + g * g) 24
            Expect.equal r.Gamma 0.0 "every γ > 0 worse: γ = 0"
            Expect.equal (r.Evaluations, r.Lowest) (2 + LineSearch.refusalSteps / 2, 2.0) "L(0), L(8), then two grid points at a time down to 8/4 before refusing"
            let r = LineSearch.lineSearchFrom 2.0 infinity (fun g -> (g - 300.0) ** 2.0) 24
            Expect.isTrue (r.Gamma >= 300.0 / sqrt 2.0 && r.Gamma <= 300.0 * sqrt 2.0) $"from 2 up to γ = {r.Gamma} ≈ 300"
            // The bound still holds: a start above it begins at the bound.
            let r = LineSearch.lineSearchFrom 64.0 7.0 (fun g -> (g - 40.0) ** 2.0) 24
            Expect.equal (r.Gamma, r.Evaluations) (7.0, 3) "start 64 under bound 7: L(0), L(7), L(the grid point under 7/√2)"
        }

        test "the loss model's minimum through L(0) and two points is the minimum of a loss quadratic in γ^p, and NaN without one" {
            for power in [ 1; 2 ] do
                for opt in [ 0.2; 3.0; 150.0 ] do
                    // L = 2 − a·t + c·t², t = γ^p, minimum at t* = a/(2c) = opt^p.
                    let a = 0.7
                    let c = a / (2.0 * opt ** float power)
                    let lossAt (g: float) = 2.0 - a * g ** float power + c * g ** (2.0 * float power)
                    for g1, g2 in [ (0.1, 0.2); (1.0, 4.0); (opt, 2.0 * opt); (0.5 * opt, 3.0 * opt) ] do
                        let m = LineSearch.modelMinimum power (lossAt 0.0) g1 (lossAt g1) g2 (lossAt g2)
                        Expect.floatClose Accuracy.medium m opt $"p {power}, opt {opt}, points {g1}, {g2}"
            // No decrease to first order, or no curvature: no minimum.
            Expect.isTrue (Double.IsNaN (LineSearch.modelMinimum 2 1.0 1.0 1.5 2.0 3.0)) "the loss rises from 0"
            Expect.isTrue (Double.IsNaN (LineSearch.modelMinimum 1 1.0 1.0 0.5 2.0 0.0)) "linear: no curvature"
        }

        test "the search with the loss model ends on the walk's γ on unimodal losses, with far fewer evaluations on a long way up, and refuses as the walk does" {
            for power in [ 1; 2 ] do
                for opt in [ 0.3; 1.0; 5.0; 40.0; 300.0 ] do
                    let lossAt (g: float) = 1.0 - g ** float power + g ** (2.0 * float power) / (2.0 * opt ** float power)
                    for start in [ nan; 1.0; 0.25; 16.0; opt ] do
                        let walk = LineSearch.lineSearchFrom start infinity lossAt 24
                        let model = LineSearch.lineSearchModel power start infinity lossAt 24
                        Expect.equal (model.Gamma, model.Loss) (walk.Gamma, walk.Loss) $"p {power}, opt {opt}, start {start}: the walk's γ"
                        Expect.isLessThanOrEqual model.Evaluations walk.Evaluations $"p {power}, opt {opt}, start {start}: no more evaluations"
                    // Far up from a cold start: the walk climbs 1, √2, 2, …; the model jumps.
                    if opt >= 40.0 then
                        let walk = LineSearch.lineSearchFrom nan infinity lossAt 24
                        let model = LineSearch.lineSearchModel power nan infinity lossAt 24
                        Expect.isLessThan model.Evaluations (walk.Evaluations / 2) $"p {power}, opt {opt}: {model.Evaluations} evaluations against the walk's {walk.Evaluations}"
            // Losses not quadratic in γ, unimodal: skewed (L = 1 − γ·e^(−γ/opt)) and saturating (L = e^(−x) + 0.01·x,
            // x = γ·ln(100)/opt), minimum at opt: the jump only ever moves to a lower loss, so the search ends on the walk's γ.
            let skewed opt (g: float) = 1.0 - g * exp (-g / opt)
            let saturating opt (g: float) = let x = g / opt * log 100.0 in exp (-x) + 0.01 * x
            for opt, lossAt in [ for opt in [ 2.0; 30.0; 500.0 ] do yield! [ opt, skewed opt; opt, saturating opt ] ] do
                for start in [ nan; 4.0; opt; 2.0 * opt; 4.0 * opt ] do
                    let walk = LineSearch.lineSearchFrom start infinity lossAt 24
                    for power in [ 1; 2 ] do
                        let model = LineSearch.lineSearchModel power start infinity lossAt 24
                        Expect.equal (model.Gamma, model.Loss) (walk.Gamma, walk.Loss) $"opt {opt}, start {start}, p {power}: the walk's γ"
                        Expect.isLessThanOrEqual model.Evaluations (walk.Evaluations + 1) $"opt {opt}, start {start}, p {power}: at most one evaluation more"
            // Refusals are the walk's: nothing below L(0) from the start down 4 grid points.
            let rising (g: float) = 1.0 + g * g
            let walk = LineSearch.lineSearchFrom 8.0 infinity rising 24
            let model = LineSearch.lineSearchModel 2 8.0 infinity rising 24
            Expect.equal (model.Gamma, model.Evaluations) (0.0, walk.Evaluations) "refused with the walk's evaluations"
            // The bound holds: a jump past it lands on it.
            let model = LineSearch.lineSearchModel 1 nan 7.0 (fun g -> (g - 40.0) ** 2.0) 24
            Expect.equal model.Gamma 7.0 "bound 7"
        }

        test "a unit proposal starts at the borrowed γ when there is one; a scaled proposal, one of no neuron, or none borrowed at its own start" {
            let proposal (count: int64) (unit: bool) =
                new NeuronProposal (torch.zeros ([| count; 3L |], dtype = torch.float64), torch.zeros ([| 2L; count |], dtype = torch.float64), null, 0.0,
                                    Array.create (int count) 1.0, 1.0, 1.0, FanOutAmplitude = unit)
            use unitProposal = proposal 2L true
            use scaled = proposal 2L false
            use empty = proposal 0L true
            // The junction's refusals walked its own start down to 0.25; its kind accepted around 128.
            Expect.equal (GammaSearch.startOf unitProposal 0.25 128.0) (128.0, 128.0) "unit features: the borrowed γ"
            let start, borrowed = GammaSearch.startOf unitProposal 0.25 nan
            Expect.equal start 0.25 "nothing borrowed: its own start"
            Expect.isTrue (System.Double.IsNaN borrowed) "nothing borrowed: none logged"
            Expect.equal (fst (GammaSearch.startOf scaled 0.25 128.0)) 0.25 "a scaled proposal's γ scales its features too: its own start"
            Expect.isTrue (System.Double.IsNaN (snd (GammaSearch.startOf scaled 0.25 128.0))) "a scaled proposal: none logged"
            Expect.equal (fst (GammaSearch.startOf empty 0.25 128.0)) 0.25 "no neuron: its own start"
        }

        test "a junction that has accepted no γ borrows the median γ its kind accepted, none of another kind, nothing once it accepts one" {
            let kinds = [| "conv>conv"; "conv>conv"; "conv>conv"; "conv>conv"; "conv>conv"; "conv>dense"; "conv>dense" |]
            let borrowed = GammaSearch.borrowedStart kinds [| 8.0; 0.0; 64.0; 512.0; 0.0; 2.0; 0.0 |]
            Expect.equal (borrowed 1) 64.0 "the median of 8, 64, 512"
            Expect.equal (borrowed 6) 2.0 "its own kind's only γ, not the conv → conv ones"
            Expect.isTrue (System.Double.IsNaN (GammaSearch.borrowedStart kinds [| 0.0; 0.0; 0.0; 0.0; 0.0; 2.0; 0.0 |] 0)) "none of its kind accepted yet: nothing"
            Expect.isTrue (System.Double.IsNaN (GammaSearch.borrowedStart kinds [||] 0)) "no accepted γ kept (an older checkpoint): nothing"
            Expect.isTrue (System.Double.IsNaN (borrowed 2)) "junction 2 has accepted a γ of its own: nothing borrowed"
        }

        test "on a real junction a warm start from the cold γ finds that γ again with fewer evaluations" {
            use net = mlp 541L f64 6 [ 2 ] "tanh" 2
            shrinkAwayFromSignal (layerOf net 0) 0.05
            let x, y = separable 542L 400L 6L
            use x = x
            use y = y
            use stats = (StatisticsPass.statisticsPass net x y 400L)[0]
            use proposal = propose net 0 stats 1 (options 0.0 false)
            let lossAt = CandidateLoss.candidateLoss net 0 proposal stats x y
            // Unbounded: the γ climbs far from the cold start at 1.
            let cold = LineSearch.lineSearchFrom nan infinity lossAt 24
            let warm = LineSearch.lineSearchFrom cold.Gamma infinity lossAt 24
            Expect.isGreaterThan cold.Gamma 8.0 $"the answer is far from the cold start ({cold.Gamma})"
            Expect.equal (warm.Gamma, warm.Loss) (cold.Gamma, cold.Loss) "same γ, same loss"
            Expect.isLessThan warm.Evaluations (cold.Evaluations - 3) $"{warm.Evaluations} evaluations against {cold.Evaluations}"
            // Bounded (here below 1: the answer is the bound): no worse than the cold search.
            let bound = 2.0 * (GammaSearch.spreadsOf net 0 proposal stats x |> fun s -> s.Existing / s.NewLargestAtOne)
            let cold = LineSearch.lineSearchFrom nan bound lossAt 24
            let warm = LineSearch.lineSearchFrom cold.Gamma bound lossAt 24
            Expect.equal (warm.Gamma, warm.Loss) (cold.Gamma, cold.Loss) $"bound {bound}: same γ, same loss"
            Expect.isLessThanOrEqual warm.Evaluations cold.Evaluations $"bound {bound}: {warm.Evaluations} evaluations against {cold.Evaluations}"
            // Through growJunctionFrom: the start is reported.
            let event = GammaSearch.growJunctionFrom 3.0 0.0 net 0 proposal stats x y
            Expect.equal event.SearchStart (LineSearch.gridPoint 3.0) "search start reported (3 on the √2 grid: 2√2)"
        }

        test "a start sunk by refusals is lifted to where the first-order decrease is measurable, and the search finds the cold γ again" {
            use net = mlp 541L f64 6 [ 2 ] "tanh" 2
            shrinkAwayFromSignal (layerOf net 0) 0.05
            let x, y = separable 542L 400L 6L
            use x = x
            use y = y
            use stats = (StatisticsPass.statisticsPass net x y 400L)[0]
            use proposal = propose net 0 stats 1 (options 0.0 false)
            let lossAt = CandidateLoss.candidateLoss net 0 proposal stats x y
            let cold = LineSearch.lineSearchFrom nan infinity lossAt 24
            // From 1e-6 (seven refusals in a row sink a start of 1 to 2⁻¹⁴; this is further) the search's
            // 24 steps up end far below the answer.
            let sunk = LineSearch.lineSearchFrom 1e-6 infinity lossAt 24
            Expect.isLessThan sunk.Gamma (cold.Gamma / 100.0) $"unfloored: γ = {sunk.Gamma} against the cold {cold.Gamma}"
            let floor = GammaSearch.startFloor proposal.AmplitudePower (proposal.PredictedDecrease 1.0) (lossAt 0.0)
            Expect.isGreaterThan floor 1e-4 $"the floor {floor}"
            Expect.isLessThan floor (cold.Gamma / 64.0) "far below the answer: it only stops the sinking"
            let event = GammaSearch.growJunctionFrom 1e-6 0.0 net 0 proposal stats x y
            Expect.equal event.SearchStart (LineSearch.gridPoint floor) "the search starts at the floor"
            Expect.equal event.Gamma cold.Gamma "and climbs to the cold search's γ"
            Expect.equal (GammaSearch.startFloor 2 0.0 1.0, GammaSearch.startFloor 1 nan 1.0) (0.0, 0.0) "nothing predicted: no floor"
        }

        test "spreads from A's kept existing outputs (the γ search's probe) are measure's; kept outputs of other samples are not used" {
            use net = mlp 501L f64 6 [ 3 ] "tanh" 2
            let x, y = separable 502L 400L 6L
            use x = x
            use y = y
            use stats = (StatisticsPass.statisticsPass net x y 400L)[0]
            use proposal = propose net 0 stats 1 (options 0.0 false)
            Expect.isGreaterThan proposal.Count 0 "neurons proposed"
            let junction = net.Junctions[0]
            let full = Amplitude.measure junction proposal stats x
            use kept = junction.A.Forward x // the existing channels' pre-activations: a dense A without normalisation
            let given = Amplitude.measureGiven junction proposal stats x kept
            Expect.floatClose Accuracy.veryHigh given.Existing full.Existing "existing spread"
            Expect.floatClose Accuracy.veryHigh given.NewLargestAtOne full.NewLargestAtOne "largest new spread"
            Expect.floatClose Accuracy.veryHigh given.NewMedianAtOne full.NewMedianAtOne "median new spread"
            // What it reads is the kept tensor (no second product of A): twice the kept outputs, twice the existing spread.
            use doubled = kept * 2.0
            Expect.floatClose Accuracy.veryHigh (Amplitude.measureGiven junction proposal stats x doubled).Existing (2.0 * full.Existing) "the kept outputs are read"
            use other = kept.narrow (0L, 0L, 10L)
            Expect.equal (Amplitude.measureGiven junction proposal stats x other) full "kept outputs of other samples: measured whole"
            Expect.equal (Amplitude.measureGiven junction proposal stats x null) full "none kept: measured whole"
            Expect.equal junction.A.OutputWidth 3 "the candidate was undone"
        }

        test "a junction with BatchNorm after A measures its pre-activations whole: A's kept outputs are not what σ sees" {
            use net = ConvTests.cnn 511L f64 [| 2L; 6L; 6L |] [ ConvTests.conv 2 3 1 1 1 false true "tanh" "none"; ConvTests.denseSpec 2 ] "flatten" 2
            use x = ConvTests.images 512L 128L 2L 6L
            use y = labels 513L 128L 2L
            use stats = (StatisticsPass.statisticsPass net x y 128L)[0]
            use proposal = propose net 0 stats 2 (options 0.0 true)
            Expect.isGreaterThan proposal.Count 0 "neurons proposed"
            let junction = net.Junctions[0]
            let full = Amplitude.measure junction proposal stats x
            use kept = junction.A.Forward x
            use doubled = kept * 2.0
            Expect.equal (Amplitude.measureGiven junction proposal stats x doubled) full "measured whole: the kept outputs are before BatchNorm"
        }

        test "tanh: where the unbounded search saturates the new units, the chosen γ keeps their spread within the bound" {
            use net = mlp 501L f64 6 [ 2 ] "tanh" 2
            // Small existing first-layer weights: existing pre-activations have a small spread. They
            // ignore the signal (inputs 0, 1), so B's existing inputs cannot express it and the new
            // neuron is the one that finds it.
            shrinkAwayFromSignal (layerOf net 0) 0.05
            let x, y = separable 502L 400L 6L
            use x = x
            use y = y
            use stats = (StatisticsPass.statisticsPass net x y 400L)[0]
            use proposal = propose net 0 stats 1 (options 0.0 false)
            Expect.isGreaterThan proposal.Count 0 "neurons proposed"
            let spreads = GammaSearch.spreadsOf net 0 proposal stats x
            let unbounded = LineSearch.lineSearchWithin infinity (CandidateLoss.candidateLoss net 0 proposal stats x y) 24
            let ratio = 2.0
            let limit = ratio * spreads.Existing
            // The situation the bound is for: unbounded, the new units' pre-activations are far
            // larger than the existing ones' and deep in tanh's flat part (tanh′(3) < 0.01).
            Expect.isGreaterThan (unbounded.Gamma * spreads.NewLargestAtOne) (10.0 * limit) "unbounded: new spread ≫ the bound"
            Expect.isGreaterThan (unbounded.Gamma * spreads.NewLargestAtOne) 3.0 $"unbounded: saturated tanh units (γ = {unbounded.Gamma}, spread at 1 = {spreads.NewLargestAtOne}, existing {spreads.Existing}, K = {proposal.Count}, loss {unbounded.Loss} from {unbounded.Loss0})"
            let event = GammaSearch.growJunctionWithin ratio net 0 proposal stats x y
            Expect.isGreaterThan event.Added 0 "neurons added below the bound"
            Expect.isLessThanOrEqual event.Gamma event.GammaBound "γ within the bound"
            // Measured again on the committed network: the new channels are the last ones.
            let rms = spreadsNow net 0 x
            let fresh = rms[2..]
            Expect.equal fresh.Length proposal.Count "K new channels"
            // The bound is linear in γ; the recomputation differs by float64 rounding only.
            Expect.isLessThanOrEqual (Array.max fresh) (limit * (1.0 + 1e-9)) $"every new neuron's spread ≤ {ratio} × the existing median: %A{fresh} vs {limit}"
            Expect.floatClose Accuracy.veryHigh (Array.max fresh) event.NewSpread "reported spread = measured spread"
            Expect.floatClose Accuracy.veryHigh (Amplitude.median rms[..1]) event.ExistingSpread "reported existing spread"
            Expect.isLessThan event.LossAfter event.LossBefore "the held-out loss fell"
            Expect.isTrue (event.LossEvaluations > 1) "evaluations reported"
        }

        test "identity σ: no bound, and the search finds the loss minimum" {
            use net = mlp 511L f64 6 [ 2 ] "identity" 3
            use x = randn 512L 300L 6L
            use y = labels 513L 300L 3L
            use stats = (StatisticsPass.statisticsPass net x y 300L)[0]
            use proposal = propose net 0 stats 3 (options 0.0 true)
            Expect.isGreaterThan proposal.Count 0 "neurons proposed"
            // The minimum of the real loss over a fine log grid (0.01 … 100, 1 % steps).
            let lossAt = CandidateLoss.candidateLoss net 0 proposal stats x y
            let best = [ for k in 0 .. 925 -> 0.01 * 1.01 ** float k ] |> List.minBy lossAt
            let event = GammaSearch.growJunctionWithin 2.0 net 0 proposal stats x y
            Expect.equal event.GammaBound infinity "no bound for a σ that cannot saturate"
            Expect.isTrue (event.Gamma >= best / sqrt 2.0 && event.Gamma <= best * sqrt 2.0) $"γ = {event.Gamma} within a √2 grid step of the minimum {best}"
            Expect.isLessThan event.LossAfter event.LossBefore "the loss fell"
        }

        test "the committed network's held-out loss equals the loss the search measured at the chosen γ" {
            // Dense tanh (bound active), and a CNN with BatchNorm whose new channels are passed
            // through in train mode (the probe loss the search measures uses batch statistics).
            let check (name: string) (net: Network) (x: torch.Tensor) (y: torch.Tensor) =
                use stats = (StatisticsPass.statisticsPass net x y 64L)[0]
                use proposal = propose net 0 stats 3 (options 0.0 true)
                let event = GammaSearch.growJunctionWithin 2.0 net 0 proposal stats x y
                Expect.isGreaterThan event.Added 0 $"{name}: neurons added (else this test shows nothing)"
                let after = Training.probeLoss net x y
                // The search computes only A's new channels (its existing ones are kept from before the
                // candidate): float32 rounding apart from a full forward (SearchResumeTests).
                Expect.isLessThanOrEqual (abs (after - event.LossAfter)) (1e-6 * after) $"{name}: probe loss after commit = the search's loss at γ = {event.Gamma} ({after} vs {event.LossAfter})"
                Expect.equal (event.LossBefore - event.LossAfter) event.MeasuredDecrease $"{name}: measured decrease"
            use dense = mlp 521L torch.ScalarType.Float32 6 [ 2 ] "tanh" 3
            let x = (randn 522L 256L 6L).to_type torch.ScalarType.Float32
            use y = labels 523L 256L 3L
            check "dense" dense x y
            let bn = ConvTests.conv 2 3 1 1 1 false true "tanh" "none"
            use cnn = ConvTests.cnn 524L torch.ScalarType.Float32 [| 1L; 8L; 8L |] [ bn; ConvTests.conv 2 3 1 1 1 false true "tanh" "none"; ConvTests.denseSpec 3 ] "gap" 3
            use images = (ConvTests.images 525L 48L 1L 8L).to_type torch.ScalarType.Float32
            use y = labels 526L 48L 3L
            check "conv + BatchNorm" cnn images y
        }

        test "slope_over_predicted is the held-out decrease at γ/16 over the prediction there, about 1 when the prediction is of the same samples; NaN when nothing was added or predicted" {
            // Statistics and held-out samples are the same 256 here, so the first-order prediction is the
            // held-out slope itself: the ratio is 1 up to the second-order term at γ/16.
            let build () = mlp 541L f64 6 [ 2 ] "tanh" 3
            use x = randn 542L 256L 6L
            use y = labels 543L 256L 3L
            use grown = build ()
            use stats = (StatisticsPass.statisticsPass grown x y 256L)[0]
            use proposal = propose grown 0 stats 3 (options 0.0 false)
            let event = GammaSearch.growJunctionWithin 0.0 grown 0 proposal stats x y
            Expect.isGreaterThan event.Added 0 "neurons added (else this test shows nothing)"
            // The same candidate on an identical network, by hand: L(0) − L(γ/16) over the prediction at γ/16.
            use fresh = build ()
            use stats2 = (StatisticsPass.statisticsPass fresh x y 256L)[0]
            use proposal2 = propose fresh 0 stats2 3 (options 0.0 false)
            let g = event.Gamma / GammaSearch.slopeProbe
            let byHand = (Training.probeLoss fresh x y - CandidateLoss.candidateLoss fresh 0 proposal2 stats2 x y g) / proposal2.PredictedDecrease g
            Expect.floatClose Accuracy.high event.SlopeOverPredicted byHand "the logged ratio is the one defined"
            Expect.isLessThan (abs (event.SlopeOverPredicted - 1.0)) 0.1 $"in-sample, the prediction's slope is the measured one ({event.SlopeOverPredicted})"
            Expect.isGreaterThan (GammaSearch.measuredOverPredicted event) 0.0 "the decrease at γ is positive"
            // Nothing added: null (NaN).
            Expect.isTrue (System.Double.IsNaN (GammaSearch.slopeOverPredicted 0.0 (fun _ -> 1.0) (fun _ -> 0.0) 1.0)) "γ = 0: NaN"
            Expect.isTrue (System.Double.IsNaN (GammaSearch.slopeOverPredicted 1.0 (fun _ -> 0.0) (fun _ -> 0.0) 1.0)) "nothing predicted: NaN"
        }

        test "the first-order prediction uses A's activation slope: GELU (½) and SELU (1.0507 at 0⁺)" {
            // Without δ applied, the first-order decrease of the mean loss is
            // (1/n) Σ_i Σ_k s_ik z_ik (−g_i·ω_k), z_ik = α_kᵀb̃_i, s_ik = σ′ at z_ik's side of 0. For a
            // smooth σ (GELU) that is σ′(0) Σ_k α_kᵀ(−M2)ω_k = σ′(0)(Σλ_k² − cross) (N is projected
            // with δ whether or not δ is applied); for SELU (slope 1.0507 above 0, 1.0507·1.6733
            // below) the same sum with each sample's slope.
            for activation, slope0 in [ "gelu", 0.5; "selu", 1.0507009873554805 ] do
                use net = mlp 531L f64 5 [ 3 ] activation 3
                use x = randn 532L 200L 5L
                use y = labels 533L 200L 3L
                use stats = (StatisticsPass.statisticsPass net x y 200L)[0]
                use proposal = propose net 0 stats 3 (options 0.0 false)
                Expect.isGreaterThan proposal.Count 0 $"{activation}: neurons proposed"
                Expect.equal proposal.ActivationSlope slope0 $"{activation}: the proposal carries σ′(0⁺)"
                Expect.equal proposal.ActivationSlope net.Junctions[0].ActivationSlopeAtZero $"{activation}: the junction's slope"
                let sumLambda2 = Array.sum proposal.NeuronScores
                Expect.floatClose Accuracy.veryHigh (proposal.PredictedDecrease 1.0) (slope0 * sumLambda2) $"{activation}: predicted = σ′(0)Σλ²"
                // The first-order decrease by hand from per-sample gradients.
                let firstOrder =
                    let logits, records = net.ForwardRecording x
                    use loss = torch.nn.functional.cross_entropy (logits, y, reduction = torch.nn.Reduction.Sum)
                    use g = (torch.autograd.grad ([| loss |], [| records[0].BOutput |]))[0]
                    use _ = torch.no_grad ()
                    use ones = torch.ones ([| 200L; 1L |], dtype = f64)
                    use bt = torch.cat ([| x; ones |], 1L)
                    use z = bt.mm (proposal.FanIn.t ())
                    use s =
                        if activation = "selu" then torch.where (z.gt (0.0.ToScalar ()), torch.full_like (z, slope0.ToScalar ()), torch.full_like (z, (slope0 * 1.6732632423543772).ToScalar ()))
                        else torch.full_like (z, slope0.ToScalar ())
                    use gw = g.mm proposal.FanOut
                    use terms = s * z * gw
                    -(terms.sum().ToDouble ()) / 200.0
                let l0 = Training.meanLoss net x y
                let fd gamma = (l0 - lossWith net 0 proposal stats x y gamma) / (gamma * gamma)
                // GELU(u) = u/2 + u²/√(2π) + …: the FD's error is O(γ) relative (the u² term), 1e-5
                // at γ = 1e-5 times O(1) factors; loss rounding adds ~1e-16/1e-10. SELU is linear
                // on each side of 0: exact up to samples whose sign γz flips (none) and rounding.
                Expect.floatClose { absolute = 0.0; relative = 1e-3 } (fd 1e-5) firstOrder $"{activation}: finite difference = first-order decrease by hand"
                if activation = "gelu" then
                    let update = Bottleneck.existingWeightsUpdate stats 1e-10
                    use delta = update.Delta
                    let cross = Bottleneck.crossTerm stats delta (directions proposal)
                    // The prediction's slope times the exact bracket: ½, not 1 (a slope of 1 would be 100 % off).
                    Expect.floatClose { absolute = 0.0; relative = 1e-3 } (fd 1e-5) (proposal.ActivationSlope * (sumLambda2 - cross)) "gelu: finite difference = σ′(0)(Σλ² − cross)"
        }
    ]
