/// The engine end to end on a small synthetic task: what a run writes (metrics.jsonl events and
/// their fields, model files), a fixed baseline, cancellation, and the model file round trip.
module TinyGrow.Tests.EngineTests

open System
open System.Collections.Generic
open System.IO
open System.Text.Json
open System.Threading
open Expecto
open Microsoft.Extensions.Logging.Abstractions
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

let private f32 = torch.ScalarType.Float32

/// A pipeline that records which samples went through which path: training batches must be
/// augmented (with a generator that depends only on the seed), everything else must not.
type private RecordingPipeline () =
    member val Augmented = ResizeArray<int64> () with get
    member val Plain = ResizeArray<int64> () with get
    member val Draws = ResizeArray<int64> () with get
    interface IInputPipeline with
        member this.Inputs samples =
            this.Plain.Add samples.shape[0]
            samples.alias ()
        member this.AugmentedInputs (samples, generator) =
            this.Augmented.Add samples.shape[0]
            use draw = torch.randint (0L, 1_000_000L, [| 1L |], generator = generator)
            this.Draws.Add (draw.item<int64> ())
            samples.alias ()

let private kinds = denseKinds
let private blockKinds = mlpBlockKinds

let private model (widths: int list) =
    ModelOptions (Layers = ResizeArray [ for w in widths -> spec w 32 "tanh" true ])

let private training = TrainingOptions (Epochs = 3, BatchSize = 50, LearningRate = 0.05)
/// With a statistics pass, each step happens at its growth point, as these tests count them; statistics
/// from the training batches (the default) have their own tests in TrainingStatisticsTests.
let private growth = GrowthOptions (StepsPerEpoch = 2, UntilEpoch = 2, StatisticsSamples = 400, GammaSearchSamples = 300, NeuronsPerStep = 4, StatisticsFrom = "pass")

let private withRunFolder (f: string -> unit) =
    let dir = Directory.CreateTempSubdirectory("tinygrow-engine-").FullName
    try f dir finally Directory.Delete (dir, true)

let private events (dir: string) =
    File.ReadAllLines (Path.Combine (dir, "metrics.jsonl")) |> Array.map (fun l -> JsonDocument.Parse(l).RootElement)

let private eventName (e: JsonElement) = e.GetProperty("event").GetString ()
let private has (names: string list) (e: JsonElement) = names |> List.forall (fun n -> fst (e.TryGetProperty n))

let tests =
    testList "engine" [
        test "an evaluation in chunks (eval mode) gives the accuracy and, to float32 rounding, the loss of one forward over every sample" {
            use net = mlp 1201L torch.ScalarType.Float32 6 [ 5; 4 ] "tanh" 3
            let n = Training.evaluationChunk * 2L + 37L
            use x = (randn 1202L n 6L).to_type torch.ScalarType.Float32
            use y = labels 1203L n 3L
            let loss, accuracy = Training.lossAndAccuracy net x y
            use _ = torch.no_grad ()
            use logits = net.Forward (x, ForwardPass.Evaluation)
            use whole = torch.nn.functional.cross_entropy (logits, y)
            use right = (logits.argmax(1L).eq y).sum ()
            Expect.equal accuracy (float (right.item<int64> ()) / float n) "accuracy"
            Expect.floatClose { absolute = 0.0; relative = 1e-6 } loss (whole.ToDouble ()) "loss"
        }

        test "a growing run writes epoch, growth and final events with their fields, and the model" {
            use data = teacherDataset ()
            withRunFolder (fun dir ->
                use engine = new GrowthEngine (blockKinds, kinds, tiny, NullLogger.Instance)
                let summary = engine.Run (data, model [ 1; 1 ], training, growth, torch.CPU, dir, CancellationToken.None)
                let lines = events dir
                let epochs = lines |> Array.filter (fun e -> eventName e = "epoch")
                let growths = lines |> Array.filter (fun e -> eventName e = "growth")
                Expect.equal epochs.Length 3 "one epoch line per epoch"
                for e in epochs do
                    Expect.isTrue (has [ "epoch"; "train_loss"; "test_accuracy"; "parameters"; "widths" ] e) $"epoch fields in {e}"
                // 2 steps per epoch × 2 growing epochs × 2 junctions.
                Expect.equal growths.Length 8 "one growth line per junction and step"
                for e in growths do
                    Expect.isTrue (has [ "junction"; "added"; "gamma"; "predicted_decrease"; "measured_decrease"; "bottleneck" ] e) $"growth fields in {e}"
                let final = lines[lines.Length - 1]
                Expect.equal (eventName final) "final" "the last line is the final event"
                Expect.isTrue (has [ "test_accuracy"; "parameters"; "widths"; "seconds" ] final) "final fields"
                Expect.equal (lines |> Array.filter (fun e -> eventName e = "final")).Length 1 "one final line"
                let finalWidths = [| for w in final.GetProperty("widths").EnumerateArray () -> w.GetInt32 () |]
                Expect.equal finalWidths summary.Widths "final line = summary"
                // MaxWidth 32 is out of reach of 2 steps × 2 epochs × 4 neurons, and the schedule's last step added some.
                let setBy = [| for r in final.GetProperty("widths_set_by").EnumerateArray () -> r.GetString () |]
                Expect.equal setBy.Length summary.Widths.Length "a reason per grown layer"
                Expect.isTrue (setBy |> Array.forall (fun r -> r = WidthsSetBy.ScheduleStillGrowing || r = WidthsSetBy.Schedule)) $"the schedule set them: {setBy}"
                Expect.isGreaterThan (Array.sum summary.Widths) 2 "the network grew from 1/1"
                let added = growths |> Array.sumBy (fun e -> e.GetProperty("added").GetInt32 ())
                Expect.equal (Array.sum summary.Widths - 2) added "widths grew by exactly what the growth lines say"
                Expect.isTrue (File.Exists (Path.Combine (dir, "model.json")) && File.Exists (Path.Combine (dir, "model.bin"))) "model written"
                Expect.isTrue (File.Exists (Path.Combine (dir, "model.pt")) && File.Exists (Path.Combine (dir, "tinygrow_model.py"))) "PyTorch export written"
                let blocks = JsonDocument.Parse(File.ReadAllText (Path.Combine (dir, "model.json"))).RootElement.GetProperty "Blocks"
                let layers = blocks[0].GetProperty "Layers"
                let savedWidths = [| for l in layers.EnumerateArray () -> l.GetProperty("Width").GetInt32 () |]
                Expect.equal savedWidths summary.Widths "model.json has the final widths"
                let events = Directory.GetFiles (Path.Combine (dir, "tensorboard"), "events.out.tfevents.*", SearchOption.AllDirectories)
                Expect.isNonEmpty events "a TensorBoard event file"
                Expect.isGreaterThan (FileInfo(events[0]).Length) 100L "holding the scalars")
        }

        test "after_growth: the batches before and after a step, each with its standard error; raised only beyond the noise" {
            let follow (before: float[]) (after: float[]) =
                let state = RunState.Start ()
                for l in before do AfterGrowth.add state l |> ignore
                Expect.isNone (AfterGrowth.start state 0) "nothing followed before"
                after |> Array.map (AfterGrowth.add state) |> Array.choose id |> Array.exactlyOne
            // Alternating ±0.1 around 1.0: mean 1.0, standard error 0.1·√(50/49)/√50 ≈ 0.0143 each.
            let noisy (centre: float) = Array.init 50 (fun i -> centre + (if i % 2 = 0 then 0.1 else -0.1))
            let same = follow (Array.append (Array.create 20 9.0) (noisy 1.0)) (noisy 1.0)
            Expect.equal same.BeforeBatches AfterGrowth.batches "the last 50 batches before (older ones dropped from the ring)"
            Expect.floatClose Accuracy.high same.BeforeMean 1.0 "mean before (the 9.0s are older than the ring)"
            Expect.floatClose Accuracy.medium same.Error (0.1 * sqrt (50.0 / 49.0) / sqrt 50.0) "standard error of the mean after"
            Expect.isFalse same.Raised "the same loss: not raised"
            Expect.isFalse (follow (noisy 1.0) (noisy 1.03)).Raised "0.03 higher: within twice the difference's error (0.040)"
            Expect.isTrue (follow (noisy 1.0) (noisy 1.05)).Raised "0.05 higher: beyond it"
            Expect.isFalse (follow (noisy 1.0) (noisy 0.5)).Raised "a lower loss is never raised"
        }

        test "widths set by, in the log: the reasons, then how to let the bottleneck set widths given by a cap or a schedule" {
            let said (reasons: string[]) =
                let logger = RecordingLogger ()
                WidthsSetBy.report logger [| 229; 89 |] reasons 10
                logger.Messages Microsoft.Extensions.Logging.LogLevel.Information
            match said [| WidthsSetBy.Cap; WidthsSetBy.ScheduleStillGrowing |] with
            | [ line; cap; schedule ] ->
                Expect.equal line "Widths 229/89 set by: MaxWidth / schedule, still growing" "the widths and a reason each"
                Expect.stringContains cap "Model:Layers:N:MaxWidth" "a cap: names the option"
                Expect.stringContains schedule "Growth:UntilEpoch=10" "a schedule still growing: the settings, with the run's epochs"
            | lines -> failtest $"three lines expected: {lines}"
            Expect.equal (said [| WidthsSetBy.Test; WidthsSetBy.Bottleneck |]) [ "Widths 229/89 set by: significance test / bottleneck" ] "widths the method found: no advice"
        }
        test "widths_set_by: the cap first, then why growth ended" {
            let r = WidthsSetBy.reasons [| 256; 98 |] [| 256; 256 |]
            Expect.equal (r false false true [||]) [| WidthsSetBy.Cap; WidthsSetBy.ScheduleStillGrowing |] "the default run: cap, then a schedule still growing"
            Expect.equal (r false false false [||]) [| WidthsSetBy.Cap; WidthsSetBy.Schedule |] "the last step added nothing"
            Expect.equal (r true true false [||]) [| WidthsSetBy.Cap; WidthsSetBy.Test |] "stopped by the test (the cap still wins)"
            Expect.equal (r true false false [||]) [| WidthsSetBy.Cap; WidthsSetBy.EmptySteps |] "stopped without a test"
            Expect.equal (WidthsSetBy.reasons [| 40; 9 |] [| 256; 256 |] true true false [||]) [| WidthsSetBy.Test; WidthsSetBy.Test |] "both found by the test"
            Expect.equal (WidthsSetBy.reasons [| 20; 17; 64 |] [| 32; 64; 64 |] false false true [| 0; 2; 3 |])
                         [| WidthsSetBy.ScheduleStillGrowing; WidthsSetBy.Bottleneck; WidthsSetBy.Cap |]
                         "per junction: still growing, its last two events refused (the bottleneck), at its cap"
            Expect.equal (WidthsSetBy.reasons [| 20 |] [| 32 |] false false true [| 1 |]) [| WidthsSetBy.ScheduleStillGrowing |] "one refusal is not yet the bottleneck"
            Expect.throwsC (fun () -> WidthsSetBy.reasons [| 1 |] [| 1; 2 |] false false false [||] |> ignore)
                (fun e -> Expect.stringContains e.Message "2 caps for 1 widths" "names the mismatch")
        }

        test "StopAfterEmptySteps: growth stops for good after that many steps in a row add nothing, and not before" {
            use data = teacherDataset ()
            // A significance factor no direction can pass: every step adds nothing. 2 steps an epoch in
            // epochs 1–2 are scheduled; each step writes one growth line per junction (2).
            let never = GrowthOptions (StepsPerEpoch = 2, UntilEpoch = 2, StatisticsSamples = 400, GammaSearchSamples = 300, NeuronsPerStep = 4, StatisticsFrom = "pass",
                                       SignificanceTest = "signflip", SignificanceFactor = 1000.0)
            let growthLines stopAfter =
                never.StopAfterEmptySteps <- stopAfter
                let mutable lines = 0
                withRunFolder (fun dir ->
                    let twoEpochs = TrainingOptions (Epochs = 2, BatchSize = 50, LearningRate = 0.05)
                    let summary = (new GrowthEngine(blockKinds, kinds, tiny, NullLogger.Instance)).Run (data, model [ 1; 1 ], twoEpochs, never, torch.CPU, dir, CancellationToken.None)
                    Expect.equal summary.Widths [| 1; 1 |] "nothing significant: nothing added"
                    let growths = events dir |> Array.filter (fun e -> eventName e = "growth")
                    Expect.isTrue (growths |> Array.forall (fun e -> e.GetProperty("added").GetInt32 () = 0)) "every growth line adds nothing"
                    let final = (events dir |> Array.last).GetProperty "widths_set_by"
                    // Without StopAfterEmptySteps the schedule ends growth, but each junction's own last growth
                    // events added nothing: the bottleneck set its width.
                    let expected = if stopAfter > 0 then WidthsSetBy.Test else WidthsSetBy.Bottleneck
                    Expect.sequenceEqual [ for r in final.EnumerateArray () -> r.GetString () ] [ expected; expected ] "stopped by the test, or (its last events empty) by the bottleneck"
                    lines <- growths.Length)
                lines
            Expect.equal (growthLines 0) 8 "0: the schedule alone decides (4 steps × 2 junctions)"
            Expect.equal (growthLines 1) 2 "1: only the first step runs"
            Expect.equal (growthLines 3) 6 "3: three steps run"
            // A step that adds neurons resets the count: with the ordinary test the teacher's bottleneck is
            // significant at first, so growth goes on past one step.
            let grows = GrowthOptions (StepsPerEpoch = 2, UntilEpoch = 2, StatisticsSamples = 400, GammaSearchSamples = 300, NeuronsPerStep = 4, StatisticsFrom = "pass",
                                       StopAfterEmptySteps = 1)
            withRunFolder (fun dir ->
                (new GrowthEngine(blockKinds, kinds, tiny, NullLogger.Instance)).Run (data, model [ 1; 1 ], training, grows, torch.CPU, dir, CancellationToken.None) |> ignore
                let growths = events dir |> Array.filter (fun e -> eventName e = "growth")
                Expect.isGreaterThan growths.Length 2 "steps that add neurons do not count toward the stop")
        }

        test "the progress observer hears every batch, growth step and epoch, as metrics.jsonl records them" {
            use data = teacherDataset ()
            let heard = ResizeArray<string> ()
            let observer =
                { new IRunProgress with
                    member _.Started (epochs, batches, epoch, batch, widths) = heard.Add $"start {epochs} {batches} {epoch} {batch} {String.Join ('/', widths)}"
                    member _.Batch (epoch, batch, batches, _) = heard.Add $"batch {epoch} {batch}/{batches}"
                    member _.Growing (epoch, step) = heard.Add $"growing {epoch} {step}"
                    member _.Grown (step, junction, added, widths) = heard.Add $"grown {step} {junction} {added} {String.Join ('/', widths)}"
                    member _.Epoch (epoch, epochs, _, _, widths) = heard.Add $"epoch {epoch}/{epochs} {String.Join ('/', widths)}" }
            withRunFolder (fun dir ->
                use engine = new GrowthEngine (blockKinds, kinds, tiny, NullLogger.Instance, Observer = observer)
                let summary = engine.Run (data, model [ 1; 1 ], training, growth, torch.CPU, dir, CancellationToken.None)
                let lines = events dir
                let named (prefix: string) = heard |> Seq.filter (fun h -> h.StartsWith (prefix + " ")) |> List.ofSeq
                Expect.equal (named "start") [ "start 3 24 1 0 1/1" ] "3 epochs of 24 batches of 50, from epoch 1, batch 0, widths 1/1"
                Expect.equal (named "batch") [ for e in 1 .. 3 do for b in 1 .. 24 -> $"batch {e} {b}/24" ] "every batch, 1-based"
                Expect.equal (named "growing") [ for step, epoch in List.indexed [ 1; 1; 2; 2 ] -> $"growing {epoch} {step}" ] "4 steps: 2 per epoch until epoch 2"
                let growthLines = lines |> Array.filter (fun e -> eventName e = "growth")
                let grownReports =
                    named "grown" |> List.map (fun h ->
                        match h.Split ' ' with
                        | [| _; _; junction; added; widths |] -> $"{junction} +{added} → {(widths.Split '/').[int junction]}"
                        | _ -> failtest $"unexpected report {h}")
                let field (e: JsonElement) (name: string) = e.GetProperty(name).GetInt32 ()
                Expect.equal grownReports [ for e in growthLines -> sprintf "%d +%d → %d" (field e "junction") (field e "added") (field e "width") ]
                    "a report per junction grown, with the growth line's junction, neurons added and width"
                let widths (e: JsonElement) = String.Join ('/', e.GetProperty("widths").EnumerateArray () |> Seq.map (fun w -> w.GetInt32 ()))
                Expect.equal (named "epoch") [ for e in lines |> Array.filter (fun e -> eventName e = "epoch") -> sprintf "epoch %d/3 %s" (field e "epoch") (widths e) ]
                    "the epochs and widths of metrics.jsonl"
                Expect.stringContains (Seq.last heard) (String.Join ('/', summary.Widths)) "the last report has the final widths")
        }

        test "with no strategy the widths stay fixed and no growth line is written" {
            use data = teacherDataset ()
            withRunFolder (fun dir ->
                use engine = new GrowthEngine (blockKinds, kinds, null, NullLogger.Instance)
                let summary = engine.Run (data, model [ 4; 3 ], training, growth, torch.CPU, dir, CancellationToken.None)
                Expect.equal summary.Widths [| 4; 3 |] "fixed widths"
                Expect.isEmpty (events dir |> Array.filter (fun e -> eventName e = "growth")) "no growth lines")
        }

        test "training batches go through the augmented path, statistics, γ search and evaluation through the plain one" {
            use plain = teacherDataset ()
            let run () =
                let pipeline = RecordingPipeline ()
                // Not disposed: the splits belong to `plain`.
                let data = new LoadedDataset (plain.Name, plain.Train, plain.Test, plain.InputShape, plain.Classes, pipeline)
                withRunFolder (fun dir ->
                    // 250 γ-search samples: distinct from the test split's 300.
                    let growth = GrowthOptions (StepsPerEpoch = 2, UntilEpoch = 2, StatisticsSamples = 400, GammaSearchSamples = 250, NeuronsPerStep = 4, StatisticsFrom = "pass")
                    (new GrowthEngine(blockKinds, kinds, tiny, NullLogger.Instance)).Run (data, model [ 1; 1 ], training, growth, torch.CPU, dir, CancellationToken.None) |> ignore)
                pipeline
            let first = run ()
            // 1200 samples in batches of 50, 3 epochs.
            Expect.equal (List.ofSeq first.Augmented) (List.replicate 72 50L) "every training batch augmented, whole"
            Expect.equal (first.Plain |> Seq.filter (fun n -> n = 400L) |> Seq.length) 4 "statistics samples (400) of the 4 growth steps, plain"
            Expect.equal (first.Plain |> Seq.filter (fun n -> n = 250L) |> Seq.length) 4 "γ-search samples (250) of the 4 growth steps, plain"
            Expect.equal (first.Plain |> Seq.filter (fun n -> n = 300L) |> Seq.length) 3 "test split (300) evaluated plain after each epoch"
            let second = run ()
            Expect.sequenceEqual second.Draws first.Draws "the augmentation generator depends on the seed only"
            Expect.isGreaterThan (Seq.length (Seq.distinct first.Draws)) 60 "a fresh draw per batch"
        }

        test "a cancelled run stops with OperationCanceledException" {
            use data = teacherDataset ()
            withRunFolder (fun dir ->
                use cts = new CancellationTokenSource ()
                cts.Cancel ()
                use engine = new GrowthEngine (blockKinds, kinds, tiny, NullLogger.Instance)
                Expect.throwsT<OperationCanceledException>
                    (fun () -> engine.Run (data, model [ 1; 1 ], training, growth, torch.CPU, dir, cts.Token) |> ignore)
                    "cancelled")
        }

        test "model.bin round trip: a network loaded from the file computes the same outputs" {
            use source = mlp 310L f32 8 [ 5; 4 ] "tanh" 3
            use target = mlp 311L f32 8 [ 5; 4 ] "tanh" 3
            use x = (randn 312L 20L 8L).to_type f32
            withRunFolder (fun dir ->
                ModelFile.save source [| 8L |] 3 dir
                use before = target.Forward x
                use expected = source.Forward x
                Expect.isFalse (identical before expected) "different seeds differ before loading"
                ModelFile.loadInto target dir
                use after = target.Forward x
                Expect.isTrue (identical after expected) "identical after loading"
                use rebuilt = ModelFile.load blockKinds kinds dir torch.CPU
                Expect.equal rebuilt.Widths [| 5; 4 |] "model.json rebuilds the widths"
                use fromFile = rebuilt.Forward x
                Expect.isTrue (identical fromFile expected) "a model rebuilt from model.json + model.bin computes the same outputs")
        }

        test "a run sets the threads it chose on the thread that trains" {
            use data = teacherDataset ()
            let before = torch.get_num_threads ()
            try
                for requested, expected in [ 2, 2; 0, 1 ] do
                    withRunFolder (fun dir ->
                        use engine = new GrowthEngine (blockKinds, kinds, null, NullLogger.Instance)
                        engine.Run (data, model [ 2; 2 ], TrainingOptions (Epochs = 1, BatchSize = 50, Threads = requested), growth, torch.CPU, dir, CancellationToken.None) |> ignore
                        Expect.equal (torch.get_num_threads ()) expected $"Threads = {requested}")
            finally torch.set_num_threads before
        }
    ]
