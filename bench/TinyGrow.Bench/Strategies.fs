/// `strategies [EPOCHS] [SEEDS]`: the Fashion-MNIST MLP (784 → 1 → 1 → 10, tanh) grown with `tiny`,
/// `gradmax` and `random` under the default growth options, next to the fixed network of tiny's
/// final widths, each seed in one process, one run after the other: test accuracy, parameters,
/// seconds, and the seconds each run needs to reach that seed's fixed network's final accuracy.
/// Prints a markdown table (mean ± sample std over the seeds).
module TinyGrow.Bench.Strategies

open System
open System.IO
open System.Text.Json
open Microsoft.Extensions.Logging.Abstractions
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Growth.Strategies

type private Run =
    { Summary: RunSummary
      /// (seconds, test accuracy) after each epoch.
      Epochs: (float * float) list }

let private epochsOf (dir: string) =
    [ for line in File.ReadLines (Path.Combine (dir, "metrics.jsonl")) do
        use doc = JsonDocument.Parse line
        let root = doc.RootElement
        if root.GetProperty("event").GetString () = "epoch" then
            yield root.GetProperty("seconds").GetDouble (), root.GetProperty("test_accuracy").GetDouble () ]

let private meanStd (xs: float list) =
    let n = float xs.Length
    let m = List.average xs
    let s = if xs.Length < 2 then 0.0 else sqrt (List.sumBy (fun x -> (x - m) ** 2.0) xs / (n - 1.0))
    m, s

let run (data: LoadedDataset) (model: int list -> ModelOptions) (epochs: int) (seeds: int list) =
    let once (strategy: IGrowthStrategy | null) (widths: int list) (seed: int) =
        let dir = Directory.CreateTempSubdirectory("tinygrow-strategies-").FullName
        try
            let engine = GrowthEngine (Kinds.blockKinds, Kinds.layerKinds, strategy, NullLogger.Instance)
            let summary = engine.Run (data, model widths, TrainingOptions (Epochs = epochs, Seed = int64 seed),
                                      GrowthOptions (Strategy = (match strategy with null -> "none" | s -> s.Name)),
                                      torch.CPU, dir, Threading.CancellationToken.None)
            { Summary = summary; Epochs = epochsOf dir }
        finally Directory.Delete (dir, true)
    let names = [ "tiny"; "gradmax"; "random"; "fixed" ]
    let results =
        [ for seed in seeds do
            let tiny = once (TinyStrategy ()) [ 1; 1 ] seed
            let gradmax = once (GradMaxStrategy ()) [ 1; 1 ] seed
            let random = once (RandomStrategy ()) [ 1; 1 ] seed
            let fixedNet = once null (List.ofArray tiny.Summary.Widths) seed
            let target = fixedNet.Summary.TestAccuracy
            let reach (r: Run) = r.Epochs |> List.tryFind (fun (_, a) -> a >= target) |> Option.map fst
            let row = Map.ofList [ "tiny", tiny; "gradmax", gradmax; "random", random; "fixed", fixedNet ]
            for name in names do
                let r = row[name]
                eprintfn "seed %d %s: widths %s accuracy %.4f parameters %d seconds %.1f growth %.1f reach %A"
                    seed name (String.Join ("/", r.Summary.Widths)) r.Summary.TestAccuracy r.Summary.Parameters
                    r.Summary.Seconds r.Summary.GrowthSeconds (reach r)
            yield seed, row, reach ]
    printfn "| strategy | widths (per seed) | test accuracy %% | parameters | seconds | growth seconds | seconds to the fixed network's accuracy |"
    printfn "|---|---|---|---|---|---|---|"
    for name in names do
        let runs = [ for _, row, _ in results -> (row: Map<string, Run>)[name] ]
        let acc, accSd = meanStd [ for r in runs -> 100.0 * r.Summary.TestAccuracy ]
        let pars, parsSd = meanStd [ for r in runs -> float r.Summary.Parameters ]
        let secs, secsSd = meanStd [ for r in runs -> r.Summary.Seconds ]
        let growth, growthSd = meanStd [ for r in runs -> r.Summary.GrowthSeconds ]
        let reached = [ for _, row, reach in results -> reach row[name] ]
        let reachText =
            reached
            |> List.map (function Some s -> sprintf "%.1f" s | None -> "—")
            |> fun xs -> String.Join (" / ", xs)
        let widths = String.Join (", ", [ for r in runs -> String.Join ("/", r.Summary.Widths) ])
        printfn "| %s | %s | %.2f ± %.2f | %.0f ± %.0f | %.1f ± %.1f | %.1f ± %.1f | %s |"
            (if name = "fixed" then "fixed at tiny's widths" else name) widths acc accSd pars parsSd secs secsSd growth growthSd reachText
    printfn ""
    printfn "Seeds %s, %d epochs; \"—\": not reached within the run. Seconds to the fixed network's accuracy: per seed, the end of the first epoch whose test accuracy reaches that seed's fixed network's final one." (String.Join (", ", seeds)) epochs
