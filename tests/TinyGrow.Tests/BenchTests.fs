/// The benchmark's comparison modes (bench/TinyGrow.Bench: strategies, protocol, cnn) run end to end
/// in a tiny configuration on synthetic data, so they cannot rot: every row for every seed, the
/// widths each row is defined to have, and the table written into its own section of a results file.
module TinyGrow.Tests.BenchTests

open System
open System.IO
open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Bench
open TinyGrow.Tests.TestUtil

let private f32 = torch.ScalarType.Float32

/// `n` samples of shape `shape`, labelled by a random linear teacher over 3 classes.
let private dataset (shape: int64[]) (train: int64) (test: int64) =
    let features = Array.fold (*) 1L shape
    use teacher = (randn 401L features 3L).to_type f32
    let split seed n =
        use flat64 = randn seed n features
        let flat = flat64.to_type f32
        use logits = flat.matmul teacher
        new DataSplit (flat.reshape (Array.append [| n |] shape), logits.argmax 1L)
    new LoadedDataset ("synthetic", split 402L train, split 403L test, shape, 3, StoredInputs.Instance)

let private mlp () =
    ModelOptions (Layers = ResizeArray [ for _ in 1 .. 2 -> LayerSpec (Kind = "dense", Width = 1, MaxWidth = 12, Activation = "tanh") ])

let private experiments = Path.GetFullPath (Path.Combine (AppContext.BaseDirectory, "..", "..", "..", "..", "..", "experiments"))

/// Runs `write` on a results file that already holds other text; returns its text afterwards.
let private intoResults (write: string -> unit) =
    let path = Path.GetTempFileName ()
    try
        File.WriteAllText (path, "# Results\n\nearlier text\n")
        write path
        File.ReadAllText path
    finally File.Delete path

/// The table's data rows (after the |---| line), split into cells.
let private rowsOf (section: string) (text: string) =
    let body = text.Substring (text.IndexOf $"<!-- bench:{section} -->")
    let lines = body.Split '\n'
    let header = lines |> Array.findIndex (fun l -> l.StartsWith "|---")
    lines[header + 1 ..] |> Array.takeWhile (fun l -> l.StartsWith "|") |> Array.map (fun l -> l.Trim('|').Split '|' |> Array.map (fun c -> c.Trim ()))

let private widthsOf (cell: string) = cell.Split ", " |> Array.map (fun w -> w.Split '/' |> Array.map int)

let tests =
    testList "bench" [
        test "strategies: tiny, gradmax and random to tiny's widths, the fixed network at tiny's widths, per seed" {
            use data = dataset [| 8L |] 300L 100L
            let rows = Strategies.rows data (mlp ()) (fun seed -> TrainingOptions (Epochs = 2, BatchSize = 50, Seed = int64 seed))
                                       (GrowthOptions (StepsPerEpoch = 2, UntilEpoch = 1, StatisticsSamples = 150, GammaSearchSamples = 150, NeuronsPerStep = 4))
            let mutable written = []
            let results = Comparison.measure rows [ 1; 2 ] (fun sofar _ _ -> written <- written @ [ List.map fst sofar ])
            Expect.equal written [ [ 1 ]; [ 1; 2 ] ] "results handed over after each seed"
            for seed, runs in results do
                Expect.equal (runs.Count) 4 $"seed {seed}: every row ran"
                let tiny = runs["tiny"].Summary.Widths
                Expect.isGreaterThan (Array.sum tiny) 2 "tiny grew"
                Expect.equal runs["fixed at tiny's widths"].Summary.Widths tiny "the fixed network has tiny's widths"
                for name in [ "gradmax (to tiny's widths)"; "random (to tiny's widths)" ] do
                    let w = runs[name].Summary.Widths
                    Expect.isTrue (Array.forall2 (<=) w tiny) $"{name} stays within tiny's widths ({w} vs {tiny})"
                for KeyValue (name, run) in runs do
                    Expect.equal run.Epochs.Length 2 $"{name}: a (seconds, accuracy) pair per epoch"
                    Expect.isTrue (run.Summary.TestAccuracy >= 0.0 && run.Summary.TestAccuracy <= 1.0) $"{name}: an accuracy"
        }

        test "strategies mode also rewrites the README's headline beside docs/, and no other README" {
            use data = dataset [| 8L |] 200L 50L
            let repository = Directory.CreateTempSubdirectory("tinygrow-bench-readme-").FullName
            try
                let docs = Directory.CreateDirectory(Path.Combine (repository, "docs")).FullName
                let results = Path.Combine (docs, "results.md")
                let readme = Path.Combine (repository, "README.md")
                File.WriteAllText (results, "# Results\n")
                File.WriteAllText (readme, "# TinyGrow\n\n<!-- bench:headline -->\nold\n<!-- /bench:headline -->\n\nafter\n")
                let elsewhere = Path.Combine (docs, "README.md")
                File.WriteAllText (elsewhere, "no section here\n")
                Strategies.run data (mlp ()) 1 [ 1 ] results
                let rows (text: string) = text.Split '\n' |> Array.filter (fun l -> l.StartsWith "|")
                let shown = File.ReadAllText readme
                Expect.stringStarts shown "# TinyGrow\n\n<!-- bench:headline -->\n|" "the section's old text replaced by the table"
                Expect.stringEnds shown "<!-- /bench:headline -->\n\nafter\n" "the text after it kept"
                Expect.equal (rows shown) (rows (File.ReadAllText results)) "the same rows as results.md"
                Expect.stringContains shown "Measured by" "with the provenance line"
                Expect.equal (File.ReadAllText elsewhere) "no section here\n" "a README without the section is left alone"
            finally Directory.Delete (repository, true)
        }

        test "strategies mode writes its table into its own section, and a second run replaces it" {
            use data = dataset [| 8L |] 200L 50L
            let text =
                intoResults (fun path ->
                    Strategies.run data (mlp ()) 1 [ 1 ] path
                    Strategies.run data (mlp ()) 1 [ 1 ] path)
            Expect.stringStarts text "# Results\n\nearlier text\n" "the text around the section is kept"
            Expect.equal (text.Split "<!-- bench:strategies -->").Length 2 "one section after two runs"
            Expect.stringContains text "<!-- /bench:strategies -->" "closed"
            let table = rowsOf "strategies" text
            Expect.equal (table |> Array.map (fun r -> r[0])) [| "tiny"; "gradmax (to tiny's widths)"; "random (to tiny's widths)"; "fixed at tiny's widths" |] "a row per strategy"
            Expect.equal (widthsOf table.[3].[1]) (widthsOf table.[0].[1]) "fixed row: tiny's widths"
            for r in table do
                let accuracy = float (r[2].Split " ± ").[0]
                Expect.isTrue (accuracy >= 0.0 && accuracy <= 100.0) $"{r[0]}: accuracy in percent ({r[2]})"
            Expect.stringContains text "cores" "the machine is named"
            Expect.stringContains text "load average" "with its load"
        }

        test "protocol mode: the quoted reference row, both schedules beside the fixed network of their widths" {
            use data = dataset [| 8L |] 400L 100L
            let text = intoResults (Protocol.run data (mlp ()) 1 [ 1 ])
            let table = rowsOf "protocol" text
            Expect.equal (table |> Array.map (fun r -> r[0]))
                [| "reference (Python, quoted from issue 11)"; "tiny, reference schedule"; "fixed at the widths of \"tiny, reference schedule\""
                   "tiny, front-loaded"; "fixed at the widths of \"tiny, front-loaded\""
                   "tiny, self-stopping"; "fixed at the widths of \"tiny, self-stopping\""
                   "fixed at the widths of \"tiny, front-loaded\", another seed"; "fixed at the widths of \"tiny, self-stopping\", another seed" |] "rows"
            Expect.equal (widthsOf table.[2].[1]) (widthsOf table.[1].[1]) "fixed at the reference schedule's widths"
            Expect.equal (widthsOf table.[4].[1]) (widthsOf table.[3].[1]) "fixed at the front-loaded widths"
            Expect.equal (widthsOf table.[6].[1]) (widthsOf table.[5].[1]) "fixed at the self-stopping widths"
            Expect.equal (widthsOf table.[7].[1]) (widthsOf table.[3].[1]) "the controls: the same widths, another seed"
            Expect.equal (widthsOf table.[8].[1]) (widthsOf table.[5].[1]) "(both)"
            Expect.stringContains table.[0].[2] "86.76 ± 0.35" "the issue's figures quoted"
            Expect.stringContains text "not by us" "and said to be quoted"
            for r in table do Expect.equal r.Length 10 $"{r[0]}: with the columns of the time to within the item's 0.3 points"
        }

        test "the tolerance column: time to the target's final accuracy less the tolerance, against the target's own time to it" {
            let run accuracy (epochs: (float * float) list) : Comparison.Run =
                { Summary = { TestAccuracy = accuracy; Parameters = 1L; Widths = [| 1 |]; Seconds = fst (List.last epochs); GrowthSeconds = 0.0 }
                  Epochs = epochs }
            let rows : Comparison.Row list =
                [ { Name = "grown"; Target = "fixed"; Run = fun _ _ -> failwith "not run" }
                  { Name = "fixed"; Target = ""; Run = fun _ _ -> failwith "not run" } ]
            // The fixed network ends at 0.860 and is first there at 10 s; within 0.3 points (0.857) at 4 s.
            // The grown one never reaches 0.860; it passes 0.857 at 3 s (0.75× the fixed network's 4 s).
            let results =
                [ 1, Map [ "grown", run 0.858 [ 1.0, 0.80; 3.0, 0.8575; 6.0, 0.858 ]
                           "fixed", run 0.860 [ 2.0, 0.81; 4.0, 0.8571; 10.0, 0.860 ] ] ]
            let cells (text: string) =
                let line = text.Split '\n' |> Array.find (fun l -> l.StartsWith "| grown |")
                line.Trim('|').Split '|' |> Array.map (fun c -> c.Trim ())
            let within = cells (Comparison.tableWithin (Some 0.3) "t" "p" rows [ 1 ] results "0" "0")
            Expect.equal within.Length 10 "two more columns"
            Expect.equal within[6] "—" "the target's final accuracy: not reached"
            Expect.equal within[7] "not reached in 1 of 1" "so no ratio"
            Expect.equal within[8] "3.0" "within 0.3 points: at 3 s"
            Expect.equal within[9] "0.75 ± 0.00" "against the fixed network's 4 s to the same accuracy"
            let plain = cells (Comparison.table "t" "p" rows [ 1 ] results "0" "0")
            Expect.equal plain.Length 8 "without a tolerance, the columns of the other tables"
        }

        test "protocol's differences: each row less its target, at the last epoch and over the last five" {
            let run (accuracies: float list) : Comparison.Run =
                { Summary = { TestAccuracy = List.last accuracies; Parameters = 1L; Widths = [| 1 |]; Seconds = float accuracies.Length; GrowthSeconds = 0.0 }
                  Epochs = accuracies |> List.mapi (fun i a -> float (i + 1), a) }
            let rows : Comparison.Row list =
                [ { Name = "grown"; Target = "fixed"; Run = fun _ _ -> failwith "not run" }
                  { Name = "fixed"; Target = ""; Run = fun _ _ -> failwith "not run" } ]
            // Last epoch: 0.85 against 0.86 (−1.00 point). Last five: 0.858 against 0.862 (−0.40).
            let results = [ 1, Map [ "grown", run [ 0.80; 0.85; 0.86; 0.86; 0.87; 0.85 ]
                                     "fixed", run [ 0.81; 0.86; 0.87; 0.86; 0.86; 0.86 ] ] ]
            Expect.floatClose Accuracy.high (Protocol.lastEpochsMean 5 (snd results.[0]).["grown"]) 0.858 "the grown run's last five"
            Expect.floatClose Accuracy.high (Protocol.lastEpochsMean 9 (run [ 0.5; 0.7 ])) 0.6 "fewer epochs than asked: all of them"
            let lines = (Protocol.differences rows results).Split '\n'
            // The grown run reaches 0.86 an epoch after the fixed one and ends a point below it: item 5 not met on this seed.
            // Epochs to 0.86: the grown run at the end of epoch 3, the fixed one at the end of epoch 2.
            Expect.equal (lines |> Array.filter (fun l -> l.StartsWith "| grown")) [| "| grown | -1.00 | -1.00 ± 0.00 | -0.40 | -0.40 ± 0.00 | 3/2 | no (0 of 1) |" |] "one row for the row with a target"
            Expect.equal (Protocol.epochsToReach 0.9 (run [ 0.5; 0.7 ])) None "never reached"
            Expect.equal (Protocol.epochsToReach 0.5 (run [ 0.5; 0.7 ])) (Some 1) "reached at the end of the first epoch"
        }

        test "protocol's item 5 per seed: the target's final accuracy reached no later than the target, ending within 0.3 points below" {
            let run (accuracies: float list) : Comparison.Run =
                { Summary = { TestAccuracy = List.last accuracies; Parameters = 1L; Widths = [| 1 |]; Seconds = float accuracies.Length; GrowthSeconds = 0.0 }
                  Epochs = accuracies |> List.mapi (fun i a -> float (i + 1), a) }
            let fixedRun = run [ 0.80; 0.85; 0.86; 0.85; 0.86 ]                        // ends at 0.86, first there at 3 s
            Expect.isTrue (Protocol.meetsItemFive (run [ 0.84; 0.86; 0.85; 0.85; 0.858 ]) fixedRun) "at 2 s, ends 0.2 points below"
            Expect.isTrue (Protocol.meetsItemFive (run [ 0.84; 0.85; 0.86; 0.86; 0.87 ]) fixedRun) "at 3 s too: no later than the target"
            Expect.isFalse (Protocol.meetsItemFive (run [ 0.84; 0.85; 0.85; 0.86; 0.87 ]) fixedRun) "at 4 s: later"
            Expect.isFalse (Protocol.meetsItemFive (run [ 0.84; 0.86; 0.85; 0.85; 0.855 ]) fixedRun) "early, but ends 0.5 points below"
            Expect.isFalse (Protocol.meetsItemFive (run [ 0.84; 0.85; 0.85; 0.85; 0.859 ]) fixedRun) "never reaches it"
        }

        test "claim-cnn: grown, the caps network, the grown widths fixed, random to them, and 1/√2 of the caps, against the caps within 0.3 points" {
            let experiment = Path.Combine (experiments, "fashion-mnist-cnn.json")
            let text = intoResults (ClaimComparison.run (fun _ -> dataset [| 1L; 28L; 28L |] 128L 32L) experiment "claim-cnn" (Some 1) 0 [ 1 ])
            let table = rowsOf "claim-cnn" text
            Expect.equal (table |> Array.map (fun r -> r[0])) [| "grown (tiny)"; "fixed at the caps"; "fixed at the grown widths"; "random (to the grown widths)"; "fixed at 1/√2 of the caps" |] "rows"
            let caps = [| for l in (CnnComparison.section<ModelOptions> experiment "Model").Layers -> l.MaxWidth |]
            Expect.equal (widthsOf table.[1].[1]) [| caps |] "the caps network is at every MaxWidth"
            Expect.equal (widthsOf table.[2].[1]) (widthsOf table.[0].[1]) "fixed at the grown widths"
            for r, g in Array.zip (widthsOf table.[3].[1]).[0] (widthsOf table.[0].[1]).[0] do
                Expect.isLessThanOrEqual r g "random grows at most to the grown widths"
            // Every width at ⌊cap/√2⌋ (never below its starting width): about half the caps' parameters.
            let starts = [| for l in (CnnComparison.section<ModelOptions> experiment "Model").Layers -> l.Width |]
            Expect.equal (widthsOf table.[4].[1]) [| Array.map2 (fun c w -> max w (int (float c / sqrt 2.0))) caps starts |] "1/√2 of the caps"
            let parameters (row: string[]) = int (row[3].Split(' ').[0])
            let share = float (parameters table.[4]) / float (parameters table.[1])
            Expect.isTrue (share > 0.4 && share <= 0.5) $"about half the caps' parameters, not more ({share:F3})"
            Expect.stringContains text "to within 0.3 points" "the tolerance column"
        }

        test "cnn mode binds experiments/fashion-mnist-cnn.json and compares tiny, gradmax and random with the CNN fixed at tiny's widths" {
            let experiment = Path.Combine (experiments, "fashion-mnist-cnn.json")
            let model = CnnComparison.section<ModelOptions> experiment "Model"
            Expect.equal model.Layers.Count 5 "the experiment's 5 layers"
            Expect.equal model.Layers[0].Kind "conv" "conv first"
            let growth = CnnComparison.section<GrowthOptions> experiment "Growth"
            Expect.equal growth.NeuronsPerStep 16 "the experiment's growth options"
            Expect.throwsC (fun () -> CnnComparison.section<ModelOptions> experiment "Nothing" |> ignore)
                (fun e -> Expect.stringContains e.Message "no \"Nothing\" section" "names the section")
            use data = dataset [| 1L; 28L; 28L |] 128L 32L
            let text = intoResults (CnnComparison.run data experiment (Some 1) [ 1 ])
            let table = rowsOf "cnn" text
            Expect.equal (table |> Array.map (fun r -> r[0])) [| "tiny"; "gradmax (to tiny's widths)"; "random (to tiny's widths)"; "fixed at tiny's widths" |] "rows"
            Expect.equal (widthsOf table.[3].[1]) (widthsOf table.[0].[1]) "fixed at tiny's widths"
            for r in table.[1..2] do
                Expect.isTrue (Array.forall2 (Array.forall2 (<=)) (widthsOf r[1]) (widthsOf table.[0].[1])) $"{r[0]} stays within tiny's widths ({r[1]})"
            Expect.stringContains text "1 epochs (the file says 5)" "the epochs run and the file's"
        }

        test "a results file with one marker of a section and not the other is refused, untouched" {
            let path = Path.GetTempFileName ()
            try
                File.WriteAllText (path, "<!-- bench:x -->\nhalf\n")
                Expect.throwsC (fun () -> Comparison.writeSection path "x" "body")
                    (fun e -> Expect.stringContains e.Message "broken bench:x section" "names the section")
                Expect.equal (File.ReadAllText path) "<!-- bench:x -->\nhalf\n" "untouched"
            finally File.Delete path
        }
    ]
