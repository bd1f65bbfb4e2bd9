/// Candidate.apply / undo / lineSearch and the first-order prediction of a `tiny` proposal against
/// the real loss (DESIGN §4, §4.1, §4.4).
module TinyGrow.Tests.GrowthTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

let private deltaOf (p: NeuronProposal) =
    match p.Delta with
    | null -> failwith "the proposal has no δ although UseDelta = true"
    | d -> d

/// Finite-difference decrease (L(0) − L(γ))/γ² of junction 0 of a 6 → 4 (σ) → 3 network on 200
/// samples, with the tiny proposal (all directions, δ as asked), its prediction and cross term.
let private finiteDifference (activation: string) (useDelta: bool) =
    use net = mlp 101L f64 6 [ 4 ] activation 3
    use x = randn 102L 200L 6L
    use y = labels 103L 200L 3L
    use stats = (StatisticsPass.statisticsPass net x y 64L)[0]
    use proposal = propose net 0 stats 10 (options 0.0 useDelta)
    let update = Bottleneck.existingWeightsUpdate stats 1e-10
    use delta = update.Delta
    let cross = Bottleneck.crossTerm stats delta (directions proposal)
    let l0 = Training.meanLoss net x y
    let fd gamma = (l0 - lossWith net 0 proposal stats x y gamma) / (gamma * gamma)
    proposal.Count, proposal.PredictedDecrease 1.0, proposal.ActivationSlope, cross, fd 1e-3, fd 1e-4

let private report name (count: int) pred cross fd3 fd4 =
    printfn "FD %s: K=%d predicted=%.10g cross=%.6g FD(1e-3)=%.10g FD(1e-4)=%.10g pred−cross=%.10g" name count pred cross fd3 fd4 (pred - cross)

/// Forward of the dense junction 0 → 1 of a one-hidden-layer tanh network with the proposal
/// applied at γ, computed from the tensors: z_B' = (W_B − γ²δ_W) h + (b_B − γ²δ_b) + γ ω σ(γ(α_W x + α_b)).
let private handForward (net: Network) (p: NeuronProposal) (gamma: float) (x: torch.Tensor) =
    use _ = torch.no_grad ()
    let wA, bA = weightAndBias (layerOf net 0)
    let wB, bB = weightAndBias (layerOf net 1)
    let delta = deltaOf p
    let d1 = delta.shape[1]
    use dW = delta.narrow (1L, 0L, d1 - 1L)
    use dB = delta.narrow(1L, d1 - 1L, 1L).flatten ()
    let d2 = p.FanIn.shape[1]
    use alphaW = p.FanIn.narrow (1L, 0L, d2 - 1L)
    use alphaB = p.FanIn.narrow(1L, d2 - 1L, 1L).flatten ()
    use h = torch.tanh (x.mm (wA.t ()) + bA)
    use existing = h.mm ((wB - dW * (gamma * gamma)).t ()) + (bB - dB * (gamma * gamma))
    use fresh = torch.tanh ((x.mm (alphaW.t ()) + alphaB) * gamma)
    use added = fresh.mm (p.FanOut.t ()) * gamma
    existing + added

let private forward (net: Network) (x: torch.Tensor) =
    use _ = torch.no_grad ()
    net.Forward x

let tests =
    testList "growth" [
        test "identity σ: (L(0) − L(γ))/γ² equals the predicted decrease, and the cross term is 0" {
            let k, pred, slope, cross, fd3, fd4 = finiteDifference "identity" true
            report "identity, δ" k pred cross fd3 fd4
            Expect.isGreaterThan k 0 "some neurons proposed"
            // For a linear σ the cross term vanishes exactly (v_proj ⟂ span of b); what remains is
            // rounding of O(|P||δ||α||ω|) products, ~1e-16 relative to the prediction.
            Expect.isLessThan (abs cross) (1e-10 * pred) "cross term = 0 for a linear σ"
            // The loss is f(γ²·t) exactly for identity σ: the FD error is O(γ²) relative (1e-6 at
            // γ = 1e-3) plus loss rounding / γ² (~1e-16/1e-6 = 1e-10): 1e-4 relative is loose for
            // that and tight for any mistake in the formula (a missing term is O(1) relative).
            Expect.floatClose { absolute = 0.0; relative = 1e-4 } fd3 pred "γ = 1e-3"
            Expect.floatClose { absolute = 0.0; relative = 1e-4 } fd4 pred "γ = 1e-4"
            Expect.equal slope 1.0 "σ′(0) of identity"
        }

        test "identity σ without δ: the prediction Σλ² alone matches the finite difference" {
            let k, pred, _, cross, fd3, fd4 = finiteDifference "identity" false
            report "identity, no δ" k pred cross fd3 fd4
            // Same error budget as with δ.
            Expect.floatClose { absolute = 0.0; relative = 1e-4 } fd3 pred "γ = 1e-3"
            Expect.floatClose { absolute = 0.0; relative = 1e-4 } fd4 pred "γ = 1e-4"
        }

        test "tanh σ: the finite difference equals the prediction corrected by the cross term" {
            let k, pred, slope, cross, fd3, fd4 = finiteDifference "tanh" true
            report "tanh, δ" k pred cross fd3 fd4
            // First-order change of the mean loss: −Δ + σ′(0) Σ_k α_kᵀ M2 ω_k, and with
            // M2 = Pδᵀ − N, α_kᵀ N ω_k = λ_k², so the exact first-order decrease is
            // Δ + σ′(0)(Σλ_k² − cross) = PredictedDecrease(1) − σ′(0)·cross.
            let exact = pred - slope * cross
            // tanh(u) = u − u³/3: the next term is O(γ²) relative (1e-6 at γ = 1e-3), plus loss
            // rounding (~1e-10): 1e-4 relative as for the identity.
            Expect.floatClose { absolute = 0.0; relative = 1e-4 } fd3 exact "γ = 1e-3: prediction − cross term"
            Expect.floatClose { absolute = 0.0; relative = 1e-4 } fd4 exact "γ = 1e-4: prediction − cross term"
            Expect.isGreaterThan (abs cross) (1e-6 * pred) "the cross term is not zero for tanh (else this test shows nothing)"
            // PredictedDecrease alone: its only first-order error is the ignored cross term, so
            // |FD − pred| ≤ σ′(0)|cross| + the FD error budget (1e-4·pred, as above).
            Expect.isLessThanOrEqual (abs (fd3 - pred)) (slope * abs cross + 1e-4 * pred) "prediction alone is off by at most the cross term"
        }

        test "γ = 0 replaces nothing and leaves the outputs bit-identical" {
            use net = mlp 111L f64 5 [ 3 ] "tanh" 4
            use x = randn 112L 30L 5L
            use y = labels 113L 30L 4L
            use stats = (StatisticsPass.statisticsPass net x y 30L)[0]
            use proposal = propose net 0 stats 4 (options 0.0 true)
            use before = forward net x
            let parametersBefore = net.Parameters
            let applied = Candidate.apply net 0 proposal stats 0.0
            Expect.isTrue (Array.forall2 (fun (a: Modules.Parameter) (b: Modules.Parameter) -> obj.ReferenceEquals (a, b)) parametersBefore net.Parameters) "nothing replaced at γ = 0"
            applied.Commit ()
            use after = forward net x
            Expect.isTrue (identical before after) "outputs bit-identical"
            Expect.equal net.Widths [| 3 |] "width unchanged"
        }

        test "apply then forward equals the candidate computed by hand; undo restores the exact outputs" {
            use net = mlp 121L f64 5 [ 3 ] "tanh" 4
            use x = randn 122L 40L 5L
            use y = labels 123L 40L 4L
            use stats = (StatisticsPass.statisticsPass net x y 40L)[0]
            use proposal = propose net 0 stats 4 (options 0.0 true)
            Expect.isGreaterThan proposal.Count 1 "several neurons"
            use before = forward net x
            let gamma = 0.7
            use expected = handForward net proposal gamma x
            let applied = Candidate.apply net 0 proposal stats gamma
            Expect.equal (layerOf net 0).OutputWidth (3 + proposal.Count) "A gained K outputs"
            Expect.equal (layerOf net 1).InputWidth (3 + proposal.Count) "B gained K inputs"
            use after = forward net x
            // Same float64 operations in another order (one GEMM over [h, new] vs two): ~1e-15 relative.
            Expect.isTrue (allClose after expected 1e-12) $"forward after apply = hand candidate (max diff {maxAbsDiff after expected})"
            Expect.isFalse (allClose after before 1e-6) "the candidate changes the function (else the check is empty)"
            Candidate.undo applied
            use restored = forward net x
            Expect.isTrue (identical restored before) "undo restores bit-identical outputs"
            Expect.equal net.Widths [| 3 |] "width restored"
        }

        test "without biases: apply then forward equals the candidate computed by hand" {
            use net = mlpWith false 131L f64 5 [ 3 ] "tanh" 4
            use x = randn 132L 40L 5L
            use y = labels 133L 40L 4L
            use stats = (StatisticsPass.statisticsPass net x y 40L)[0]
            Expect.equal stats.S2.shape [| 5L; 5L |] "no trailing 1 in b̃"
            Expect.equal stats.S.shape [| 3L; 3L |] "no trailing 1 in b"
            use proposal = propose net 0 stats 4 (options 0.0 true)
            Expect.isGreaterThan proposal.Count 1 "several neurons"
            let gamma = 0.6
            use expected =
                use _ = torch.no_grad ()
                let wA = Seq.head (layerOf net 0).Parameters
                let wB = Seq.head (layerOf net 1).Parameters
                use h = torch.tanh (x.mm (wA.t ()))
                use existing = h.mm ((wB - deltaOf proposal * (gamma * gamma)).t ())
                use fresh = torch.tanh (x.mm (proposal.FanIn.t ()) * gamma)
                existing + fresh.mm (proposal.FanOut.t ()) * gamma
            Candidate.commit (Candidate.apply net 0 proposal stats gamma)
            use after = forward net x
            // As with biases: the same float64 operations in another order.
            Expect.isTrue (allClose after expected 1e-12) $"forward after apply = hand candidate (max diff {maxAbsDiff after expected})"
        }

        test "a proposal computed before an earlier junction grew gives the new inputs zero fan-in" {
            use net = mlp 141L f64 5 [ 3; 3 ] "tanh" 4
            use x = randn 142L 40L 5L
            use y = labels 143L 40L 4L
            let stats = StatisticsPass.statisticsPass net x y 40L
            use p0 = propose net 0 stats[0] 2 (options 0.0 true)
            use p1 = propose net 1 stats[1] 2 (options 0.0 true)
            let gamma = 0.5
            Candidate.commit (Candidate.apply net 0 p0 stats[0] gamma)
            Expect.equal (layerOf net 1).InputWidth 5 "layer 1 gained 2 inputs"
            Candidate.commit (Candidate.apply net 1 p1 stats[1] gamma)
            stats |> Array.iter (fun s -> s.Dispose ())
            let w1, b1 = weightAndBias (layerOf net 1)
            Expect.equal w1.shape [| 5L; 5L |] "layer 1: 3 + 2 rows, 3 + 2 columns"
            use newRows = w1.narrow (0L, 3L, 2L)
            use alphaW = p1.FanIn.narrow (1L, 0L, 3L)
            use alphaB = p1.FanIn.narrow(1L, 3L, 1L).flatten ()
            // Scaling by γ = 0.5 is exact in binary.
            Expect.isTrue (identical (newRows.narrow (1L, 0L, 3L)) (alphaW * gamma)) "old inputs: γ α"
            Expect.equal (maxAbs (newRows.narrow (1L, 3L, 2L))) 0.0 "inputs added since the statistics: zero"
            Expect.isTrue (identical (b1.narrow (0L, 3L, 2L)) (alphaB * gamma)) "bias of the new rows: γ α_b"
        }

        test "lineSearch goes above 1 when the optimum is at γ = 5" {
            let lossAt (g: float) = (g - 5.0) ** 2.0
            let gamma, loss, loss0 = LineSearch.lineSearch lossAt 24
            // The search moves on a √2 grid: the best grid point is within a factor √2 of 5.
            Expect.isGreaterThan gamma 1.0 "not capped at 1"
            Expect.isTrue (gamma >= 5.0 / sqrt 2.0 && gamma <= 5.0 * sqrt 2.0) $"γ = {gamma} within a grid step of 5"
            Expect.equal loss (lossAt gamma) "loss is the loss at γ"
            Expect.equal loss0 25.0 "loss at 0"
        }

        test "lineSearch goes far above 1 (optimum 40)" {
            let gamma, _, _ = LineSearch.lineSearch (fun g -> (g - 40.0) ** 2.0) 24
            // √2 grid, as above.
            Expect.isTrue (gamma >= 40.0 / sqrt 2.0 && gamma <= 40.0 * sqrt 2.0) $"γ = {gamma} within a grid step of 40"
        }

        test "lineSearch returns 0 when every γ > 0 is worse than γ = 0" {
            let gamma, loss, loss0 = LineSearch.lineSearch (fun g -> 1.0 + g * g) 24
            Expect.equal gamma 0.0 "γ = 0 chosen"
            Expect.equal loss loss0 "loss at 0 returned"
        }

        test "lineSearch below 1 keeps most of the available decrease (optima 0.36 and 0.72)" {
            // Unimodal shapes with their optimum below 1: a quadratic in γ, and the growth regime
            // L = L0 − Pγ² + Qγ⁴ (first-order decrease, second-order penalty). At 0.72, L(1) is just
            // below L(0), so a search that only goes up from 1 stops there with 14 % of the decrease.
            let shapes =
                [ for opt in [ 0.36; 0.72 ] do
                    yield $"quadratic {opt}", (fun (g: float) -> (g - opt) ** 2.0)
                    yield $"quartic {opt}", (fun (g: float) -> 1.0 - g * g + (g ** 4.0) / (2.0 * opt * opt)) ]
            let shortfalls =
                [ for name, lossAt in shapes do
                    let gamma, loss, loss0 = LineSearch.lineSearch lossAt 24
                    // The best the √2 grid 1, 1/√2, 1/2, … can do.
                    let bestOnGrid = [ for k in 0 .. 24 -> lossAt (sqrt 2.0 ** float -k) ] |> List.min
                    // Half of the grid's best decrease: a search that stops at the first γ below
                    // L(0) can return a γ whose loss is barely below L(0).
                    if loss0 - loss < 0.5 * (loss0 - bestOnGrid) then
                        yield $"{name}: γ = {gamma} gives decrease {loss0 - loss}, the grid's best is {loss0 - bestOnGrid}" ]
            Expect.isEmpty shortfalls $"the search keeps at least half of the grid's best decrease: %A{shortfalls}"
        }
    
        test "selection best: decrease per added parameter among neuron proposals; δ alone never wins over neurons" {
            let proposal (k: int) (deltaDecrease: float) (scores: float[]) =
                new NeuronProposal (torch.zeros (int64 k, 3L), torch.zeros (2L, int64 k), TinyGrow.Core.LinearAlgebra.Null.none,
                                    deltaDecrease, scores, 1.0, 0.0)
            let added (j: int) (k: int) = int64 k * (if j = 0 then 100L else 10L)
            use onlyDelta = proposal 0 5.0 [||]
            use wide = proposal 2 0.1 [| 0.3; 0.2 |]   // 0.5 over 200 parameters
            use narrow = proposal 1 0.0 [| 0.1 |]      // 0.1 over 10 parameters: better per parameter
            let j, _ = Selection.bestProposal added [ 0, wide; 1, narrow; 2, onlyDelta ]
            Expect.equal j 1 "the best decrease per added parameter, not the δ-only junction"
            use a = proposal 0 5.0 [||]
            use b = proposal 0 1.0 [||]
            let j, _ = Selection.bestProposal added [ 0, b; 1, a ]
            Expect.equal j 1 "no neurons anywhere: the largest δ decrease"
        }
    
        test "selection all: once a junction has grown, the next one is proposed from statistics of the grown network" {
            // A spy around tiny records, for each request, the size of b̃ in the statistics and the
            // A layer's input width (+ bias) at that moment: they agree only if the statistics were
            // retaken after junction 0 widened junction 1's A layer.
            let seen = ResizeArray<int * int64 * int> ()
            let spy =
                { new IGrowthStrategy with
                    member _.Name = "spy"
                    member _.Propose request =
                        seen.Add (seen.Count, request.Statistics.S2.shape[0], request.Junction.A.InputWidth + 1)
                        tiny.Propose request }
            use net = mlp 401L f64 6 [ 1; 1 ] "tanh" 3
            use x = randn 402L 200L 6L
            use y = labels 403L 200L 3L
            let events = Growth.step net spy (GrowthOptions (NeuronsPerStep = 3)) null 0 x y x y
            Expect.isGreaterThan events.[0].Added 0 "junction 0 grew (else this test shows nothing)"
            Expect.equal seen.Count 2 "one proposal per junction"
            for _, d2, inputs in seen do
                Expect.equal d2 (int64 inputs) "b̃ of the statistics = A's current inputs + bias"
        }
    ]
