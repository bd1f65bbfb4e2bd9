/// A strategy's proposal is checked at the boundary (Core/ProposalCheck.fs, issue 21 §1): each way a
/// plugin can break the contract is refused by name, before anything touches the network.
module TinyGrow.Tests.ProposalCheckTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

/// A strategy that proposes tiny's neurons, then breaks them with `spoil`.
let private spoiling (spoil: NeuronProposal -> NeuronProposal) =
    { new IGrowthStrategy with
        member _.Name = "spoiler"
        member _.Propose request = spoil (tiny.Propose request) }

/// A copy of `p` with the given parts replaced (clones of the rest).
let private withParts (p: NeuronProposal) (fanIn: torch.Tensor) (fanOut: torch.Tensor) (scores: float[]) =
    new NeuronProposal (fanIn, fanOut, (match p.Delta with null -> null | d -> d.clone ()), p.DeltaDecrease, scores, p.ActivationSlope, p.Bottleneck)

let private cases : (string * string * (NeuronProposal -> NeuronProposal)) list =
    [ "a fan-in one column short (the bias forgotten)", "FanIn is",
      (fun p -> use _ = p in withParts p (p.FanIn.narrow(1L, 0L, p.FanIn.shape[1] - 1L).clone ()) (p.FanOut.clone ()) p.NeuronScores)
      "a fan-in one column too long", "FanIn is",
      (fun p -> use _ = p in withParts p (torch.cat ([| p.FanIn; torch.zeros ([| p.FanIn.shape[0]; 1L |], dtype = p.FanIn.dtype) |], 1L)) (p.FanOut.clone ()) p.NeuronScores)
      "NaN in the fan-in", "FanIn holds NaN",
      (fun p -> use _ = p in withParts p (p.FanIn.clone().fill_ (nan)) (p.FanOut.clone ()) p.NeuronScores)
      "more scores than neurons", "FanIn is",
      (fun p -> use _ = p in withParts p (p.FanIn.clone ()) (p.FanOut.clone ()) (Array.append p.NeuronScores [| 1.0; 1.0 |]))
      "more neurons than the request allows", "neurons proposed; the request allows at most",
      (fun p ->
          use _ = p
          let k = 200L
          withParts p (torch.randn ([| k; p.FanIn.shape[1] |], dtype = p.FanIn.dtype)) (torch.randn ([| p.FanOut.shape[0]; k |], dtype = p.FanOut.dtype)) (Array.create (int k) 1.0))
      "an infinite amplitude", "Amplitude",
      (fun p -> use _ = p in new NeuronProposal (p.FanIn.clone (), p.FanOut.clone (), null, 0.0, p.NeuronScores, p.ActivationSlope, p.Bottleneck, Amplitude = System.Nullable infinity)) ]

/// The two sides of a growth step that may overlap: the strategy call and the first forward without gradients
/// after it starts (the γ search's probe forward; the statistics pass takes gradients).
type private Overlap() =
    member val StrategyStarted = new System.Threading.ManualResetEventSlim ()
    member val StrategyEnded = new System.Threading.ManualResetEventSlim ()
    member val ForwardDone = new System.Threading.ManualResetEventSlim ()
    /// Whether the probe forward ran while the strategy call had started and not ended.
    member val Concurrent = false with get, set

/// An mlp block whose first forward without gradients waits for the strategy call to start and records whether
/// it has ended; the strategy waits for that forward (each at most 10 s: run in turn, one of them waits in vain).
type private HandshakeBlock(inner: IModelBlock, overlap: Overlap) =
    interface IModelBlock with
        member _.Kind = inner.Kind
        member _.Junctions = inner.Junctions
        member _.Parameters = inner.Parameters
        member _.Buffers = inner.Buffers
        member _.CurrentSpec = inner.CurrentSpec
        member _.OutputShape = inner.OutputShape
        member _.Forward(x, pass) =
            if not (torch.is_grad_enabled ()) && not overlap.ForwardDone.IsSet then
                overlap.StrategyStarted.Wait (System.TimeSpan.FromSeconds 10.0) |> ignore
                overlap.Concurrent <- overlap.StrategyStarted.IsSet && not overlap.StrategyEnded.IsSet
                overlap.ForwardDone.Set ()
            inner.Forward (x, pass)
        member _.Dispose() = inner.Dispose ()

let tests =
    testList "proposal check (a strategy plugin's proposal at the boundary)" [
        test "tiny's own proposals pass" {
            use net = mlp 501L f64 6 [ 2; 2 ] "tanh" 3
            use x = randn 502L 200L 6L
            use y = labels 503L 200L 3L
            let stats = StatisticsPass.statisticsPass net x y 200L
            try
                for j in 0 .. net.JunctionCount - 1 do
                    let request = GrowthRequest (stats[j], net.Junctions[j], 4, options 0.0 true, null)
                    use p = tiny.Propose request
                    Expect.isGreaterThan p.Count 0 "neurons proposed (else the check has nothing to look at)"
                    Expect.isEmpty (ProposalCheck.problems request p) $"junction {j}: no problem"
            finally stats |> Array.iter (fun s -> s.Dispose ())
        }

        test "a strategy call past Growth:StrategyTimeoutSeconds is a plugin fault; while it runs it is reported; its own exceptions pass through" {
            use net = mlp 521L f64 6 [ 2; 2 ] "tanh" 3
            use x = randn 522L 200L 6L
            use y = labels 523L 200L 3L
            let stats = StatisticsPass.statisticsPass net x y 200L
            try
                let request = GrowthRequest (stats[0], net.Junctions[0], 4, options 0.0 true, null)
                let slow = { new IGrowthStrategy with
                               member _.Name = "slow"
                               member _.Propose r = System.Threading.Thread.Sleep 3000; tiny.Propose r }
                let reports = ResizeArray<float> ()
                let clock = System.Diagnostics.Stopwatch.StartNew ()
                let message =
                    try
                        ProposalCheck.proposeWithin slow request 1.0 (System.TimeSpan.FromSeconds 0.2) reports.Add System.Threading.CancellationToken.None |> ignore
                        failwith "the slow call was not stopped"
                    with :? ProposalCheck.PluginFaultException as e -> e.Message
                Expect.stringContains message "Growth:StrategyTimeoutSeconds = 1 s" "the limit is named"
                Expect.stringContains message "'slow'" "and the strategy"
                Expect.isLessThan clock.Elapsed.TotalSeconds 2.8 "it did not wait for the call to end"
                Expect.isGreaterThanOrEqual reports.Count 3 $"reported while it ran ({reports.Count} times)"
                let quiet = ResizeArray<float> ()
                use p = ProposalCheck.proposeWithin tiny request 60.0 (System.TimeSpan.FromSeconds 15.0) quiet.Add System.Threading.CancellationToken.None
                Expect.isGreaterThan p.Count 0 "a prompt strategy's proposal comes back"
                Expect.isEmpty quiet "and nothing is reported"
                let failing = { new IGrowthStrategy with
                                  member _.Name = "failing"
                                  member _.Propose _ = invalidOp "the strategy's own error" }
                Expect.throwsT<System.InvalidOperationException> (fun () -> ProposalCheck.proposeWithin failing request 60.0 (System.TimeSpan.FromSeconds 15.0) ignore System.Threading.CancellationToken.None |> ignore) "its own exception, unwrapped"
            finally stats |> Array.iter (fun s -> s.Dispose ())
        }

        test "work given to do meanwhile runs on the calling thread while the strategy proposes, and comes back with the proposal" {
            use net = mlp 541L f64 6 [ 2; 2 ] "tanh" 3
            use x = randn 542L 200L 6L
            use y = labels 543L 200L 3L
            let stats = StatisticsPass.statisticsPass net x y 200L
            try
                let request = GrowthRequest (stats[0], net.Junctions[0], 4, options 0.0 true, null)
                // The strategy waits for the work meanwhile to start: done one after the other, it would wait in vain.
                use started = new System.Threading.ManualResetEventSlim ()
                let mutable sawStarted = false
                let waiting = { new IGrowthStrategy with
                                  member _.Name = "waiting"
                                  member _.Propose r =
                                      sawStarted <- started.Wait (System.TimeSpan.FromSeconds 10.0)
                                      tiny.Propose r }
                let caller = System.Environment.CurrentManagedThreadId
                let p, workThread =
                    ProposalCheck.proposeWhile waiting request 60.0 (System.TimeSpan.FromSeconds 15.0) ignore System.Threading.CancellationToken.None
                                               (fun () -> started.Set (); System.Environment.CurrentManagedThreadId)
                use p = p
                Expect.isTrue sawStarted "the work meanwhile ran while the strategy proposed"
                Expect.equal workThread caller "on the calling thread (its dispose scopes and grad mode are the caller's)"
                Expect.isGreaterThan p.Count 0 "the proposal comes back with the work's result"
                // Work longer than the strategy's time limit does not make a prompt strategy late.
                use q = fst (ProposalCheck.proposeWhile tiny request 1.0 (System.TimeSpan.FromSeconds 0.2) ignore System.Threading.CancellationToken.None
                                                        (fun () -> System.Threading.Thread.Sleep 1500))
                Expect.isGreaterThan q.Count 0 "a strategy that ended while the work ran is on time"
            finally stats |> Array.iter (fun s -> s.Dispose ())
        }

        test "when the work meanwhile fails, the strategy call is waited for and its proposal released before the error passes through; the strategy's own error when both fail" {
            use net = mlp 546L f64 6 [ 2; 2 ] "tanh" 3
            use x = randn 547L 200L 6L
            use y = labels 548L 200L 3L
            let stats = StatisticsPass.statisticsPass net x y 200L
            try
                let request = GrowthRequest (stats[0], net.Junctions[0], 4, options 0.0 true, null)
                let made = System.Collections.Concurrent.ConcurrentQueue<NeuronProposal> ()
                let slow = { new IGrowthStrategy with
                               member _.Name = "slow"
                               member _.Propose r =
                                   System.Threading.Thread.Sleep 300
                                   let p = tiny.Propose r
                                   made.Enqueue p
                                   p }
                Expect.throwsT<System.ArgumentException>
                    (fun () -> ProposalCheck.proposeWhile slow request 60.0 (System.TimeSpan.FromSeconds 15.0) ignore System.Threading.CancellationToken.None
                                                          (fun () -> invalidArg "heldX" "the work's own error") |> ignore)
                    "the work's error passes through"
                // Released when the error reaches the caller, who then releases the statistics the strategy was reading.
                match made.TryPeek () with
                | true, p -> Expect.isTrue p.FanIn.IsInvalid "the proposal is already released"
                | _ -> failtest "the error passed through before the strategy call ended"
                let failing = { new IGrowthStrategy with
                                  member _.Name = "failing"
                                  member _.Propose _ = invalidOp "the strategy's own error" }
                Expect.throwsT<System.InvalidOperationException>
                    (fun () -> ProposalCheck.proposeWhile failing request 60.0 (System.TimeSpan.FromSeconds 15.0) ignore System.Threading.CancellationToken.None
                                                          (fun () -> invalidArg "heldX" "the work's own error") |> ignore)
                    "both failed: the strategy's error"
            finally stats |> Array.iter (fun s -> s.Dispose ())
        }

        test "a step that keeps the γ search's samples while the strategy proposes grows bit for bit as one that keeps them after it" {
            use x = randn 552L 300L 6L
            use y = labels 553L 300L 3L
            use hx = randn 554L 200L 6L
            use hy = labels 555L 200L 3L
            let grown (keepWhileProposing: bool) =
                use net = mlp 551L f64 6 [ 2; 2 ] "tanh" 3
                use generator = new torch.Generator (556UL)
                let context : Growth.GrowthContext =
                    { Cached = (fun _ -> None); GammaStart = (fun _ -> nan); BorrowedStart = (fun _ -> nan); Strategy = tiny; Options = GrowthOptions (NeuronsPerStep = 3)
                      Generator = generator; HeldX = hx; HeldY = hy; StillProposing = (fun _ _ -> ()); StillProposingEvery = System.TimeSpan.FromSeconds 15.0
                      Cancellation = System.Threading.CancellationToken.None; KeepWhileProposing = keepWhileProposing }
                let events = [ for step in 0 .. 2 -> Growth.stepIn context net step x y ] |> List.concat
                let values (e: GammaSearch.GrowthEvent) = e.Junction, e.Added, e.Gamma, e.LossBefore, e.LossAfter, e.LossEvaluations, e.PredictedDecrease
                events |> List.map values, net.Parameters |> Array.map (fun p -> (p :> torch.Tensor).clone ())
            let after, parametersAfter = grown false
            let alongside, parametersAlongside = grown true
            Expect.isGreaterThan (after |> List.sumBy (fun (_, added, _, _, _, _, _) -> added)) 0 "the steps grew"
            Expect.equal alongside after "every event the same: γ, losses, evaluations, neurons"
            Expect.equal parametersAlongside.Length parametersAfter.Length "the same parameters"
            for a, b in Array.zip parametersAlongside parametersAfter do
                Expect.isTrue (identical a b) "bit for bit"
                a.Dispose ()
                b.Dispose ()
        }

        test "with KeepWhileProposing a growth step runs the γ search's probe forward during the strategy call" {
            use x = randn 562L 300L 6L
            use y = labels 563L 300L 3L
            use hx = randn 564L 200L 6L
            use hy = labels 565L 200L 3L
            let stepWith (keepWhileProposing: bool) =
                use g = new torch.Generator (561UL)
                let overlap = Overlap ()
                let inner = mlpKind.Create (BlockSpec (Kind = "mlp", Layers = ResizeArray [ spec 2 8 "tanh" true; spec 2 8 "tanh" true ], IsOutput = true),
                                            BlockContext ([| 6L |], 3, layerKinds, torch.CPU, f64, g, "mlp"))
                use net = new Network ([| new HandshakeBlock (inner, overlap) :> IModelBlock |])
                let handshaking = { new IGrowthStrategy with
                                      member _.Name = "handshaking"
                                      member _.Propose r =
                                          overlap.StrategyStarted.Set ()
                                          overlap.ForwardDone.Wait (System.TimeSpan.FromSeconds 10.0) |> ignore
                                          overlap.StrategyEnded.Set ()
                                          tiny.Propose r }
                let context : Growth.GrowthContext =
                    { Cached = (fun _ -> None); GammaStart = (fun _ -> nan); BorrowedStart = (fun _ -> nan); Strategy = handshaking
                      Options = GrowthOptions (NeuronsPerStep = 3, Selection = "roundrobin"); Generator = g; HeldX = hx; HeldY = hy
                      StillProposing = (fun _ _ -> ()); StillProposingEvery = System.TimeSpan.FromSeconds 15.0
                      Cancellation = System.Threading.CancellationToken.None; KeepWhileProposing = keepWhileProposing }
                Growth.stepIn context net 0 x y |> ignore
                overlap.Concurrent
            Expect.isTrue (stepWith true) "the probe forward ran while the strategy proposed"
        }

        test "a stop during a growth step abandons it at once, nothing applied (SIGTERM during a slow strategy call)" {
            use net = mlp 531L f64 6 [ 2; 2 ] "tanh" 3
            use x = randn 532L 200L 6L
            use y = labels 533L 200L 3L
            let widths = net.Widths
            let slow = { new IGrowthStrategy with
                           member _.Name = "slow"
                           member _.Propose r = System.Threading.Thread.Sleep 5000; tiny.Propose r }
            use stop = new System.Threading.CancellationTokenSource (System.TimeSpan.FromSeconds 0.5)
            let context : Growth.GrowthContext =
                { Cached = (fun _ -> None); GammaStart = (fun _ -> nan); BorrowedStart = (fun _ -> nan); Strategy = slow; Options = GrowthOptions (NeuronsPerStep = 3)
                  Generator = null; HeldX = x; HeldY = y; StillProposing = (fun _ _ -> ()); StillProposingEvery = System.TimeSpan.FromSeconds 15.0
                  Cancellation = stop.Token; KeepWhileProposing = true }
            let clock = System.Diagnostics.Stopwatch.StartNew ()
            Expect.throwsT<System.OperationCanceledException> (fun () -> Growth.stepIn context net 0 x y |> ignore) "the step is abandoned"
            Expect.isLessThan clock.Elapsed.TotalSeconds 3.0 $"at once, not when the call ends ({clock.Elapsed.TotalSeconds:f1} s)"
            Expect.equal net.Widths widths "nothing applied"
        }

        test "each broken proposal stops the step by name (strategy, assembly, junction, field) with nothing applied" {
            for name, field, spoil in cases do
                use net = mlp 511L f64 6 [ 2; 2 ] "tanh" 3
                use x = randn 512L 200L 6L
                use y = labels 513L 200L 3L
                let widths = net.Widths
                let parameters = net.Parameters |> Array.map (fun p -> (p :> torch.Tensor).clone ())
                let message =
                    try
                        Growth.step net (spoiling spoil) (GrowthOptions (NeuronsPerStep = 3)) null 0 x y x y |> ignore
                        failwith $"{name}: the step was not stopped"
                    with :? ProposalCheck.PluginFaultException as e -> e.Message
                Expect.stringContains message field $"{name}: the field is named"
                Expect.stringContains message "'spoiler'" $"{name}: the strategy is named"
                Expect.stringContains message "TinyGrow.Tests" $"{name}: its assembly is named"
                Expect.stringContains message net.Junctions[0].Name $"{name}: the junction is named"
                Expect.equal net.Widths widths $"{name}: no width changed"
                for before, now in Array.zip parameters net.Parameters do
                    Expect.isTrue (identical before (now :> torch.Tensor)) $"{name}: no parameter changed"
                    before.Dispose ()
        }
    ]
