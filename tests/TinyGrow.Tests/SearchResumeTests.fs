/// The γ search resumes each candidate's forward at the junction's A (Network.ForwardKeeping /
/// ForwardFrom, IResumableBlock), A computing only the channels the candidate appends: the outputs
/// and losses it measures must be the full forward's — bit for bit without a candidate, to float32
/// rounding with one (A's existing channels come from a GEMM of fewer rows) — at every junction of
/// every block kind.
module TinyGrow.Tests.SearchResumeTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Tests.Fixtures

let private f32 = torch.ScalarType.Float32

let private bitEqual (a: torch.Tensor) (b: torch.Tensor) = a.shape = b.shape && (use same = a.eq b in same.all().item<bool> ())

/// Float32 rounding of a forward, relative to the output's largest entry.
let private rounding = 1e-5

/// Relative tolerance of a float32 mean loss recomputed in another order.
let private lossRounding = 1e-6

let private largest (t: torch.Tensor) = (use m = t.abs().max () in use m64 = m.to_type torch.ScalarType.Float64 in m64.ToDouble ())

/// Largest |a − b| in float64 (TestUtil.maxAbsDiff reads float64 tensors).
let private maxAbsDiff (a: torch.Tensor) (b: torch.Tensor) =
    use a64 = a.to_type torch.ScalarType.Float64
    use b64 = b.to_type torch.ScalarType.Float64
    TestUtil.maxAbsDiff a64 b64

/// Models whose junctions sit at every kind of place: deep in an MLP, a conv → conv junction behind a
/// conv with BatchNorm and an average pool, conv → flatten → dense, dense → dense after a CNN, and
/// ResNet blocks (no IResumableBlock: they run from their own input; they resume after B), with the junctions to check:
/// a ResNet's first ones (a stride-1 block, and one with a projection shortcut); its last ones read
/// 512·9-wide patches, whose whitening alone takes seconds.
let private models () : (string * Network * torch.Tensor * torch.Tensor * int list) list =
    let mlpNet = mlp 901L f32 6 [ 3; 2; 3 ] "tanh" 3
    let mlpX = (TestUtil.randn 902L 64L 6L).to_type f32
    let cnnNet =
        ConvTests.cnn 903L f32 [| 2L; 8L; 8L |]
            [ ConvTests.conv 2 3 1 1 1 false true "tanh" "avg2"
              ConvTests.conv 3 3 1 1 1 true true "relu" "none"
              ConvTests.conv 2 3 1 1 1 false false "tanh" "none"
              ConvTests.denseSpec 3; ConvTests.denseSpec 2 ] "flatten" 3
    let cnnX = (ConvTests.images 904L 128L 2L 8L).to_type f32
    use g = new torch.Generator (905UL)
    let resnet = Network.Build (ConvTests.blockKinds, ConvTests.layerKinds, ModelOptions (Preset = "resnet18"), [| 3L; 16L; 16L |], 3, torch.CPU, f32, g)
    let resnetX = (ConvTests.images 906L 16L 3L 16L).to_type f32
    [ "mlp", mlpNet, mlpX, labels 907L 64L 3L, [ 0 .. mlpNet.JunctionCount - 1 ]
      "cnn", cnnNet, cnnX, labels 908L 128L 3L, [ 0 .. cnnNet.JunctionCount - 1 ]
      "resnet18", resnet, resnetX, labels 909L 16L 3L, [ 0; 1; 2 ] ]

/// `proposal` as a unit proposal (FanOutAmplitude: A's rows as given, γ on B's columns and δ only).
let private asUnit (proposal: NeuronProposal) =
    new NeuronProposal (proposal.FanIn.clone (), proposal.FanOut.clone (), (match proposal.Delta with NonNull d -> d.clone () | _ -> null),
                        proposal.DeltaDecrease, proposal.NeuronScores, proposal.ActivationSlope, proposal.Bottleneck, FanOutAmplitude = true)

/// An mlp block whose resume after B scales the logits (a faulty block plugin): everything else is the mlp's.
type private OffAfterB(inner: IModelBlock) =
    interface IModelBlock with
        member _.Kind = "off-after-b"
        member _.Junctions = inner.Junctions
        member _.Parameters = inner.Parameters
        member _.Buffers = inner.Buffers
        member _.CurrentSpec = inner.CurrentSpec
        member _.OutputShape = inner.OutputShape
        member _.Forward(x, pass) = inner.Forward (x, pass)
        member _.Dispose() = inner.Dispose ()
    interface IResumableAfterB with
        member _.BOutputFrom(j, blockInput, aInput, aOutput, pass) = (inner :?> IResumableAfterB).BOutputFrom (j, blockInput, aInput, aOutput, pass)
        member _.ForwardAfterB(j, blockInput, z, pass) = (inner :?> IResumableAfterB).ForwardAfterB (j, blockInput, z, pass) * 2.0

let tests =
    testList "γ search resumed at the junction" [
        test "a block whose resume after B does not match its forward stops the search as a plugin fault naming the block and the junction" {
            use g = new torch.Generator (941UL)
            let inner = mlpKind.Create (BlockSpec (Kind = "mlp", Layers = ResizeArray [ spec 3 64 "tanh" true; spec 3 64 "tanh" true ], IsOutput = true),
                                        BlockContext ([| 6L |], 3, layerKinds, torch.CPU, f32, g, "mlp"))
            use net = new Network ([| new OffAfterB (inner) :> IModelBlock |])
            use x = (TestUtil.randn 942L 64L 6L).to_type f32
            use y = labels 943L 64L 3L
            use stats = (StatisticsPass.statisticsPass net x y 64L)[0]
            use proposal = propose net 0 stats 2 (options 0.0 true)
            use unit = asUnit proposal
            use scope = torch.NewDisposeScope ()
            let samples = CandidateLoss.keepSearchSamples net 0 x y
            let message =
                try
                    CandidateLoss.linearChange net samples unit stats |> ignore
                    failtest "a resume off by a factor on the logits passed"
                with :? ProposalCheck.PluginFaultException as e -> e.Message
            for part in [ "off-after-b"; net.Junctions[0].Name; "IResumableAfterB"; "Fix the block plugin" ] do
                Expect.stringContains message part "the message names the block, the junction, the contract and the fix"
            // Nothing stays applied: the network is the one before the search.
            Expect.equal net.Widths [| 3; 3 |] "widths unchanged"
            Expect.floatClose Accuracy.veryHigh (Training.probeLoss net x y) samples.Loss0 "loss unchanged"
        }

        test "after B: the kept B output resumes the forward bit for bit, and a unit proposal's Z(0) + γΔZ gives the full forward's loss to rounding, at every junction of every block kind" {
            for name, net, x, y, junctions in models () do
                use net = net
                use x = x
                use y = y
                let stats = StatisticsPass.statisticsPass net x y x.shape[0]
                try
                    use _ = torch.no_grad ()
                    for j in junctions do
                        use scope = torch.NewDisposeScope ()
                        let full = net.Forward (x, ForwardPass.Probe)
                        let _, point = net.ForwardKeeping (x, j, ForwardPass.Probe)
                        match point.BOutput with
                        | null -> failtest $"{name} junction {j}: every shipped block kind keeps B's output"
                        | z0 ->
                            Expect.isTrue (bitEqual (net.ForwardAfterB (point, z0, ForwardPass.Probe)) full) $"{name} junction {j}: resumed after B = full"
                            Expect.isTrue (bitEqual (net.BOutputFrom (point, ForwardPass.Probe)) z0) $"{name} junction {j}: B's output from the point = the kept one"
                        use proposal = propose net j stats[j] 2 (options 0.0 true)
                        Expect.isGreaterThan proposal.Count 0 $"{name} junction {j}: a proposal to check"
                        use unit = asUnit proposal
                        let samples = CandidateLoss.keepSearchSamples net j x y
                        match CandidateLoss.linearChange net samples unit stats[j] with
                        | None -> failtest $"{name} junction {j}: a unit proposal on a block that resumes after B has a linear change"
                        | Some change ->
                            for gamma in [ 0.25; 1.0; 3.0; 40.0 ] do
                                let direct = CandidateLoss.candidateLoss net j unit stats[j] x y gamma
                                let linear = CandidateLoss.candidateLossWith (Some change) net samples unit stats[j] gamma
                                Expect.isGreaterThan (abs (direct - samples.Loss0)) (100.0 * lossRounding * max 1.0 gamma * direct) $"{name} junction {j}, γ = {gamma}: the candidate changes the loss far beyond the tolerance"
                                Expect.isLessThanOrEqual (abs (linear - direct)) (lossRounding * max 1.0 gamma * direct) $"{name} junction {j}, γ = {gamma}: {linear} from B vs {direct} full"
                        // Not a unit proposal: γ also scales A's rows, nothing is linear, and the search applies it.
                        Expect.isNone (CandidateLoss.linearChange net samples proposal stats[j]) $"{name} junction {j}: no linear change for a proposal with γ on both sides"
                finally stats |> Array.iter (fun s -> s.Dispose ())
        }

        test "a unit proposal's search (from B's output) commits the network whose probe loss it measured, to rounding" {
            for name, net, x, y, _ in models () do
                use net = net
                use x = x
                use y = y
                use stats = (StatisticsPass.statisticsPass net x y x.shape[0])[1]
                use proposal = propose net 1 stats 3 (options 0.0 true)
                use unit = asUnit proposal
                let event = GammaSearch.growJunctionWithin 2.0 net 1 unit stats x y
                Expect.isGreaterThan event.Added 0 $"{name}: neurons added (else this test shows nothing)"
                let after = Training.probeLoss net x y
                Expect.isLessThanOrEqual (abs (after - event.LossAfter)) (lossRounding * max 1.0 event.Gamma * after) $"{name}: probe loss after commit at γ = {event.Gamma}: {after} vs the search's {event.LossAfter}"
                Expect.isGreaterThan (event.LossBefore - after) (100.0 * lossRounding * max 1.0 event.Gamma * after) $"{name}: the commit lowered the loss beyond the tolerance"
        }

        test "ForwardFrom at every junction equals the full probe forward: bit for bit as it is, to rounding with a candidate applied" {
            for name, net, x, y, junctions in models () do
                use net = net
                use x = x
                use y = y
                let stats = StatisticsPass.statisticsPass net x y x.shape[0]
                try
                    Expect.isGreaterThan net.JunctionCount 1 $"{name}: several junctions"
                    let mutable withCandidates = 0
                    use _ = torch.no_grad ()
                    for j in junctions do
                        use scope = torch.NewDisposeScope ()
                        let full = net.Forward (x, ForwardPass.Probe)
                        let kept, point = net.ForwardKeeping (x, j, ForwardPass.Probe)
                        Expect.isTrue (bitEqual kept full) $"{name} junction {j}: the keeping forward is the forward"
                        Expect.isTrue (bitEqual (net.ForwardFrom (point, ForwardPass.Probe)) full) $"{name} junction {j}: resumed = full"
                        match point.AOutput with
                        | null -> Expect.equal name "resnet18" "only a block that cannot resume keeps no A output"
                        | kept -> Expect.isTrue (bitEqual kept (net.Junctions[j].A.Forward point.AInput)) $"{name} junction {j}: the kept A output is A's output on the kept A input"
                        use proposal = propose net j stats[j] 2 (options 0.0 true)
                        if proposal.Count > 0 then
                            withCandidates <- withCandidates + 1
                            let applied = Candidate.apply net j proposal stats[j] 0.7
                            try
                                let withCandidate = net.Forward (x, ForwardPass.Probe)
                                let scale = largest withCandidate
                                Expect.isGreaterThan (maxAbsDiff withCandidate full) (100.0 * rounding * scale) $"{name} junction {j}: the candidate changes the output far beyond rounding"
                                let resumed = net.ForwardFrom (point, ForwardPass.Probe)
                                Expect.isLessThanOrEqual (maxAbsDiff resumed withCandidate) (rounding * scale) $"{name} junction {j}: resumed = full with the candidate, to rounding"
                            finally Candidate.undo applied
                    Expect.equal withCandidates junctions.Length $"{name}: every junction checked had a candidate to apply (else this shows little)"
                finally stats |> Array.iter (fun s -> s.Dispose ())
        }

        test "the search's losses from kept samples equal candidateLoss (full forward) to rounding for every γ, over several probe chunks too" {
            let check (name: string) (net: Network) (x: torch.Tensor) (y: torch.Tensor) (junctions: int list) =
                let stats = StatisticsPass.statisticsPass net x y (min 256L x.shape[0])
                try
                    for j in junctions do
                        use scope = torch.NewDisposeScope ()
                        use proposal = propose net j stats[j] 2 (options 0.0 true)
                        let samples = CandidateLoss.keepSearchSamples net j x y
                        Expect.equal samples.Loss0 (Training.probeLoss net x y) $"{name} junction {j}: L(0)"
                        for gamma in [ 0.25; 1.0; 3.0 ] do
                            let full = CandidateLoss.candidateLoss net j proposal stats[j] x y gamma
                            let resumed = CandidateLoss.candidateLossFrom net samples proposal stats[j] gamma
                            Expect.isLessThanOrEqual (abs (resumed - full)) (lossRounding * full) $"{name} junction {j}, γ = {gamma}: {resumed} vs {full}"
                finally stats |> Array.iter (fun s -> s.Dispose ())
            for name, net, x, y, junctions in models () do
                use net = net
                use x = x
                use y = y
                check name net x y junctions
            // 1.5 chunks: the second chunk's samples are kept and resumed separately.
            use net = mlp 911L f32 6 [ 3; 3 ] "tanh" 3
            let n = Training.probeChunk * 3L / 2L
            use x = (TestUtil.randn 912L n 6L).to_type f32
            use y = labels 913L n 3L
            check "mlp, 1.5 probe chunks" net x y [ 0; 1 ]
        }

        test "a search without held-out samples is refused with the options to fix" {
            use net = mlp 931L f32 6 [ 3 ] "tanh" 3
            use x = torch.zeros ([| 0L; 6L |], dtype = f32)
            use y = torch.zeros ([| 0L |], dtype = torch.ScalarType.Int64)
            Expect.throwsC (fun () -> CandidateLoss.keepSearchSamples net 0 x y |> ignore)
                (fun e -> Expect.stringContains e.Message "Growth:GammaSearchSamples" "names the option")
        }

        test "at a later junction the committed network's probe loss is the loss the search measured, to rounding" {
            let check (name: string) (net: Network) (j: int) (x: torch.Tensor) (y: torch.Tensor) =
                use stats = (StatisticsPass.statisticsPass net x y x.shape[0])[j]
                use proposal = propose net j stats 3 (options 0.0 true)
                // The full-forward loss on the search's grid, before the commit: what the tolerance must tell apart.
                let grid = dict [ for k in -8 .. 8 -> k, CandidateLoss.candidateLoss net j proposal stats x y (2.0 ** (float k / 2.0)) ]
                let event = GammaSearch.growJunctionWithin 2.0 net j proposal stats x y
                Expect.isGreaterThan event.Added 0 $"{name}: neurons added (else this test shows nothing)"
                let after = Training.probeLoss net x y
                Expect.isLessThanOrEqual (abs (after - event.LossAfter)) (lossRounding * after) $"{name}: probe loss after commit at γ = {event.Gamma}: {after} vs the search's {event.LossAfter}"
                let k = int (System.Math.Round (2.0 * System.Math.Log2 event.Gamma))
                if grid.ContainsKey k && abs (2.0 ** (float k / 2.0) - event.Gamma) < 1e-12 then
                    for other in [ k - 1; k + 1 ] do
                        if grid.ContainsKey other then
                            Expect.isGreaterThan (abs (grid[other] - after)) (100.0 * lossRounding * after) $"{name}: a commit one grid point off would not pass as this one"
            for name, net, x, y, _ in models () do
                use net = net
                use x = x
                use y = y
                check $"{name} junction 1" net 1 x y
        }
    ]
