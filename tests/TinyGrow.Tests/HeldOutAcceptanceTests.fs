/// The held-out acceptance test of a γ search (Growth:AcceptanceZ, GammaSearch.growJunctionTested): the
/// paired z of per-sample loss differences, the per-sample losses it is computed from, and the rule that a
/// candidate below the threshold adds nothing and leaves the network as it was; a proposal that changes
/// nothing is not searched.
module TinyGrow.Tests.HeldOutAcceptanceTests

open System
open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

/// A tanh MLP with a 2-unit hidden layer whose statistics and held-out samples differ (so the held-out
/// decrease is a real measurement), with junction 0's proposal of up to 3 neurons.
let private junction () =
    let net = mlp 541L f64 6 [ 2 ] "tanh" 3
    use xs = randn 542L 256L 6L
    use ys = labels 543L 256L 3L
    let stats = (StatisticsPass.statisticsPass net xs ys 256L)[0]
    let proposal = propose net 0 stats 3 (options 0.0 false)
    net, stats, proposal

let private heldOut () = randn 544L 512L 6L, labels 545L 512L 3L

/// The event of a fresh junction's growth under `threshold` (the network is disposed after).
let private grownWith (threshold: float) (hx: torch.Tensor) (hy: torch.Tensor) =
    let net, stats, proposal = junction ()
    use net = net
    use stats = stats
    use proposal = proposal
    GammaSearch.growJunctionTested threshold true nan nan 0.0 net 0 proposal stats hx hy

let tests =
    testList "held-out acceptance" [
        test "pairedZ is the mean per-sample decrease over its standard error; a loss common to before and after cancels" {
            // d = 1, 2, 3: mean 2, sd 1, z = 2 / (1/√3).
            let before = [| 5.0; 7.0; 9.0 |]
            let after = Array.map2 (-) before [| 1.0; 2.0; 3.0 |]
            Expect.floatClose Accuracy.high (GammaSearch.pairedZ before after) (2.0 * sqrt 3.0) "2√3"
            // Each sample's own difficulty (an offset on both sides) is what pairing removes.
            let offsets = [| 100.0; -40.0; 3.5 |]
            Expect.floatClose Accuracy.high (GammaSearch.pairedZ (Array.map2 (+) before offsets) (Array.map2 (+) after offsets)) (2.0 * sqrt 3.0) "offsets cancel"
            Expect.floatClose Accuracy.high (GammaSearch.pairedZ after before) (-2.0 * sqrt 3.0) "a rise is a negative z"
            // Brute force against the unpaired textbook form on random data: z = √n·mean/sd.
            let rng = Random 7
            let b = Array.init 1000 (fun _ -> rng.NextDouble ())
            let a = b |> Array.map (fun v -> v - 0.01 + 0.1 * (rng.NextDouble () - 0.5))
            let d = Array.map2 (-) b a
            let m = Array.average d
            let sd = sqrt ((Array.sumBy (fun x -> (x - m) ** 2.0) d) / 999.0)
            Expect.floatClose Accuracy.high (GammaSearch.pairedZ b a) (sqrt 1000.0 * m / sd) "√n·mean/sd"
            Expect.equal (GammaSearch.pairedZ [| 2.0; 3.0 |] [| 1.0; 2.0 |]) infinity "the same positive decrease on every sample: +∞"
            Expect.isTrue (Double.IsNaN (GammaSearch.pairedZ [| 1.0 |] [| 0.0 |])) "one sample: no standard error"
            Expect.throwsC (fun () -> GammaSearch.pairedZ [| 1.0; 2.0 |] [| 1.0 |] |> ignore) (fun e -> Expect.stringContains e.Message "1 losses after for 2 before" "names the lengths")
        }

        test "the kept samples' per-sample losses at γ = 0, and candidateLossesWith's at γ > 0, average to the search's losses" {
            let net, stats, proposal = junction ()
            use net = net
            use stats = stats
            use proposal = proposal
            let hx, hy = heldOut ()
            use hx = hx
            use hy = hy
            use scope = torch.NewDisposeScope ()
            let samples = CandidateLoss.keepSearchSamples net 0 hx hy
            Expect.equal samples.Losses0.Length 512 "γ = 0: one loss per held-out sample"
            Expect.floatClose Accuracy.high (Array.average samples.Losses0) samples.Loss0 "γ = 0: the mean is L(0)"
            for gamma in [ 0.3; 2.0 ] do
                let losses = CandidateLoss.candidateLossesWith None net samples proposal stats gamma
                Expect.equal losses.Length 512 $"γ = {gamma}: one loss per held-out sample"
                Expect.floatClose Accuracy.high (Array.average losses) (CandidateLoss.candidateLossFrom net samples proposal stats gamma) $"γ = {gamma}: the mean is the search's loss"
            // The candidate is undone: the network's loss is what it was.
            Expect.floatClose Accuracy.high (Training.probeLoss net hx hy) samples.Loss0 "network unchanged"
        }

        test "AcceptanceZ keeps a candidate at or above it and refuses one below it, which then adds nothing and leaves the network as it was" {
            let hx, hy = heldOut ()
            use hx = hx
            use hy = hy
            // The margin alone: accepted, no z measured.
            let plain = grownWith 0.0 hx hy
            Expect.isGreaterThan plain.Added 0 "the margin alone keeps the candidate (else this test shows nothing)"
            Expect.isTrue (Double.IsNaN plain.HeldOutZ) "no test: held_out_z null"
            // A low threshold: the same γ, and z measured.
            let low = grownWith 0.5 hx hy
            Expect.equal (low.Added, low.Gamma, low.LossAfter) (plain.Added, plain.Gamma, plain.LossAfter) "same candidate, same γ, same loss"
            Expect.isGreaterThan low.HeldOutZ 0.5 $"z = {low.HeldOutZ} measured"
            Expect.equal low.LossEvaluations (plain.LossEvaluations + 1) "one more loss evaluation (the chosen γ, per sample; L_i(0) are kept with the samples)"
            // Just above and just below the measured z.
            for threshold, kept in [ low.HeldOutZ * 1.001, false; low.HeldOutZ * 0.999, true ] do
                let net, stats, proposal = junction ()
                use net = net
                use stats = stats
                use proposal = proposal
                let before = Training.probeLoss net hx hy
                let widthBefore = net.Junctions[0].A.OutputWidth
                let e = GammaSearch.growJunctionTested threshold true nan nan 0.0 net 0 proposal stats hx hy
                Expect.floatClose Accuracy.high e.HeldOutZ low.HeldOutZ $"threshold {threshold}: the same z"
                if kept then
                    Expect.equal (e.Added, e.Gamma) (plain.Added, plain.Gamma) $"threshold {threshold} below z: kept"
                else
                    Expect.equal (e.Added, e.Gamma, e.MeasuredDecrease) (0, 0.0, 0.0) $"threshold {threshold} above z: refused"
                    Expect.equal net.Junctions[0].A.OutputWidth widthBefore "no neuron added"
                    Expect.equal (Training.probeLoss net hx hy) before "the network is the one before the step"
                    Expect.isTrue (Double.IsFinite e.NextStart && e.NextStart > 0.0) "the next search still starts where this one looked"
        }

        test "a proposal of no neuron and no δ is not searched: one evaluation (the probe's L(0)), nothing added; with δ it is searched" {
            let net, stats, proposal = junction ()
            use net = net
            use stats = stats
            use proposal = proposal
            let hx, hy = heldOut ()
            use hx = hx
            use hy = hy
            let before = Training.probeLoss net hx hy
            let d1 = proposal.FanIn.shape[1]
            let d2 = proposal.FanOut.shape[0]
            use empty = new NeuronProposal (torch.zeros ([| 0L; d1 |], dtype = torch.float64), torch.zeros ([| d2; 0L |], dtype = torch.float64),
                                            null, 0.0, [||], proposal.ActivationSlope, proposal.Bottleneck)
            let e = GammaSearch.growJunctionTested 0.0 false nan nan 0.0 net 0 empty stats hx hy
            Expect.equal (e.Proposed, e.Added, e.Gamma, e.LossEvaluations) (0, 0, 0.0, 1) "nothing proposed, nothing searched"
            Expect.floatClose Accuracy.high e.LossBefore before "L(0) is the network's held-out loss"
            Expect.equal e.LossAfter e.LossBefore "the loss after is the loss before"
            // The same empty proposal with the update of the existing weights: searched (δ alone can lower the loss).
            use tinyWithDelta = propose net 0 stats 3 (options 0.0 true)
            match tinyWithDelta.Delta with
            | null -> failtest "UseDelta gives δ"
            | delta ->
                use withDelta = new NeuronProposal (torch.zeros ([| 0L; d1 |], dtype = torch.float64), torch.zeros ([| d2; 0L |], dtype = torch.float64),
                                                    delta.clone (), tinyWithDelta.DeltaDecrease, [||], proposal.ActivationSlope, proposal.Bottleneck)
                let e = GammaSearch.growJunctionTested 0.0 false nan nan 0.0 net 0 withDelta stats hx hy
                Expect.isGreaterThan e.LossEvaluations 2 "δ alone is searched"
                Expect.equal e.Proposed 0 "no neuron proposed"
        }
    ]
