/// Grown-versus-fixed comparisons shared by the `strategies`, `protocol` and `cnn` modes: one run
/// per row and seed (seeds outermost, so machine load falls on every row alike), then a markdown
/// table of mean ± sample std over the seeds, written into its own section of a results file
/// with the machine, the commit, the seeds and the load average.
module TinyGrow.Bench.Comparison

open System
open System.Diagnostics
open System.IO
open System.Text.Json
open System.Threading
open Microsoft.Extensions.Logging.Abstractions
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Bench.Measure

/// One finished run.
type Run =
    { Summary: RunSummary
      /// (seconds, test accuracy) at the end of each epoch.
      Epochs: (float * float) list }

/// A row of a comparison: how to run it for a seed, given the rows of that seed run before it.
type Row =
    { Name: string
      /// The row whose final accuracy is this row's target ("" for none): the time to reach it is reported.
      Target: string
      Run: int -> Map<string, Run> -> Run }

let private epochsOf (dir: string) =
    [ for root in MetricsSchema.Events (Path.Combine (dir, "metrics.jsonl")) do
        if root.GetProperty("event").GetString () = "epoch" then
            yield root.GetProperty("seconds").GetDouble (), root.GetProperty("test_accuracy").GetDouble () ]

/// Trains one network in a temporary run folder (deleted afterwards). `strategy` null: fixed widths.
/// One row's run, on one torch thread whatever the model (Training:Threads = 1; the product's auto
/// would give a CNN two): the tables compare rows measured alike, and stay comparable with earlier ones.
let train (data: LoadedDataset) (strategy: IGrowthStrategy | null) (model: ModelOptions) (training: TrainingOptions) (growth: GrowthOptions) =
    let dir = Directory.CreateTempSubdirectory("tinygrow-bench-").FullName
    try
        use engine = new GrowthEngine (Kinds.blockKinds, Kinds.layerKinds, strategy, NullLogger.Instance)
        training.Threads <- 1
        let summary = engine.Run (data, model, training, growth, torch.CPU, dir, CancellationToken.None)
        { Summary = summary; Epochs = epochsOf dir }
    finally Directory.Delete (dir, true)

/// `value` deserialized from JSON, or a clear error when the JSON is `null`.
let fromJson<'T> (what: string) (json: string) : 'T =
    match JsonSerializer.Deserialize<'T> json with
    | null -> invalidArg what $"{what} is null."
    | v -> v

/// A deep copy of an options object (JSON round trip).
let copyOf<'T> (value: 'T) : 'T = fromJson<'T> (typeof<'T>.Name) (JsonSerializer.Serialize value)

/// A copy of `model` (JSON round trip) whose layers start at `widths`; `cap`: MaxWidth = those widths too.
let withWidths (model: ModelOptions) (widths: int[]) (cap: bool) =
    let copy = copyOf model
    if copy.Layers.Count <> widths.Length then
        invalidArg "widths" $"{widths.Length} widths for {copy.Layers.Count} layers."
    for layer, w in Seq.zip copy.Layers widths do
        layer.Width <- w
        if cap then layer.MaxWidth <- w
    copy

/// A row grown with `strategy` from `model`'s starting widths up to the final widths of the row
/// `reference` of the same seed (MaxWidth = those widths), against `target`'s final accuracy.
let grownToWidthsOf (reference: string) (target: string) (name: string) (strategy: unit -> IGrowthStrategy)
                    (data: LoadedDataset) (model: ModelOptions) (training: int -> TrainingOptions) (growth: GrowthOptions) =
    { Name = $"{name} (to {reference}'s widths)"; Target = target
      Run = fun seed earlier ->
                let capped = withWidths model [| for l in model.Layers -> l.Width |] false
                for layer, w in Seq.zip capped.Layers earlier[reference].Summary.Widths do layer.MaxWidth <- w
                train data (strategy ()) capped (training seed) growth }

/// A copy of a training section with `epochs` epochs and the given seed: a row's training for one seed.
let trainingFor (training: TrainingOptions) (epochs: int) (seed: int) =
    let t = copyOf training
    t.Epochs <- epochs
    t.Seed <- int64 seed
    t

/// The end of the first epoch whose test accuracy reaches `target`.
let secondsToReach (target: float) (run: Run) =
    run.Epochs |> List.tryFind (fun (_, a) -> a >= target) |> Option.map fst


let loadAverage () =
    try (File.ReadAllText "/proc/loadavg").Split(' ') |> Array.take 3 |> String.concat " " with _ -> "unknown"

let private cpuModel () =
    try
        File.ReadLines "/proc/cpuinfo"
        |> Seq.tryFind (fun l -> l.StartsWith "model name")
        |> Option.map (fun l -> l.Substring(l.IndexOf ':' + 1).Trim ())
        |> Option.defaultValue "unknown CPU"
    with _ -> "unknown CPU"

/// `git describe`-like commit of the working directory ("+ changes" when the tree is dirty), taken on the first
/// call (the first table, before the bench writes it into docs/results.md) and kept: the bench's own writes made
/// every later table say "+ uncommitted changes" of a clean checkout.
let private commitOnce = lazy (
    let git (args: string) =
        try
            match Process.Start (ProcessStartInfo ("git", args, RedirectStandardOutput = true, RedirectStandardError = true)) with
            | null -> None
            | p ->
                use p = p
                let out = p.StandardOutput.ReadToEnd ()
                p.WaitForExit ()
                if p.ExitCode = 0 then Some (out.Trim ()) else None
        with _ -> None
    match git "rev-parse --short HEAD" with
    | Some head -> if git "status --porcelain --untracked-files=no" |> Option.exists (fun s -> s <> "") then head + " + uncommitted changes" else head
    | None -> "unknown (not a git checkout)")

/// The commit the bench measures (commitOnce).
let commit () = commitOnce.Value

/// Every row for every seed (seeds outermost), with progress (and each run's epoch curve) on stderr.
/// `afterSeed results loadBefore loadNow` is called after each seed with the seeds done so far, so
/// that a run stopped part way still leaves its table.
let measure (rows: Row list) (seeds: int list) (afterSeed: (int * Map<string, Run>) list -> string -> string -> unit) =
    let before = loadAverage ()
    let mutable results = []
    for seed in seeds do
        let mutable done' = Map.empty
        for row in rows do
            let r = row.Run seed done'
            eprintfn "seed %d %s: widths %s accuracy %.4f parameters %d seconds %.1f growth %.1f; epochs (s, accuracy) %s"
                seed row.Name (String.Join ("/", r.Summary.Widths)) r.Summary.TestAccuracy r.Summary.Parameters
                r.Summary.Seconds r.Summary.GrowthSeconds (String.Join (" ", [ for s, a in r.Epochs -> sprintf "%.0f:%.4f" s a ]))
            done' <- done'.Add (row.Name, r)
        results <- results @ [ seed, done' ]
        afterSeed results before (loadAverage ())
    results

/// Per seed, the seconds `row` and its target row take to first reach the target's final accuracy
/// less `points` percentage points (None: not within the run).
let private timesToTarget (results: (int * Map<string, Run>) list) (row: Row) (points: float) =
    let target = if row.Target = "" then row.Name else row.Target
    [ for _, r in results ->
        let goal = r[target].Summary.TestAccuracy - points / 100.0
        secondsToReach goal r[row.Name], secondsToReach goal r[target] ]

/// "a / b / —" per seed, and the ratio row/target over the seeds where both reach it.
let private reachText (row: Row) (pairs: (float option * float option) list) =
    let text = pairs |> List.map (function Some s, _ -> sprintf "%.1f" s | None, _ -> "—") |> fun xs -> String.Join (" / ", xs)
    let ratios = [ for p in pairs do match p with Some a, Some b -> yield a / b | _ -> () ]
    let ratioText =
        if row.Target = "" then "1 (itself)"
        elif ratios.Length < pairs.Length then sprintf "not reached in %d of %d" (pairs.Length - ratios.Length) pairs.Length + (if ratios.IsEmpty then "" else let m, s = meanStd ratios in sprintf "; others %.2f ± %.2f" m s)
        else let m, s = meanStd ratios in sprintf "%.2f ± %.2f" m s
    text, ratioText

/// The markdown table of `measure`'s results, preceded by the machine and followed by the notes.
/// `tolerance` (percentage points, when given) adds the time ratio to the target's final accuracy
/// less that many points: a criterion that allows an accuracy tolerance ("within 0.3 points") also
/// allows it in the time to reach that accuracy.
let tableWithin (tolerance: float option) (title: string) (protocol: string) (rows: Row list) (planned: int list) (results: (int * Map<string, Run>) list) (loadBefore: string) (loadAfter: string) =
    let w = new StringWriter ()
    let line (s: string) = w.WriteLine s
    let seeds = [ for s, _ in results -> s ]
    line $"### {title}"
    line ""
    line $"{protocol}"
    line ""
    let now = DateTime.UtcNow.ToString "yyyy-MM-dd HH:mm"
    let seedList = String.Join (", ", seeds)
    line $"Measured by `make bench` on {Environment.MachineName}: {cpuModel ()}, {Environment.ProcessorCount} cores, one torch thread, shared with other jobs (load average {loadBefore} at the start, {loadAfter} when this table was written); commit {commit ()}; {now} UTC; seeds {seedList}, mean ± sample std over them."
    line ""
    match tolerance with
    | None ->
        line "| row | widths (per seed) | test accuracy % | parameters | seconds | growth seconds (share) | seconds to reach the target's final accuracy (per seed) | that time / the target's own time to it |"
        line "|---|---|---|---|---|---|---|---|"
    | Some points ->
        line $"| row | widths (per seed) | test accuracy %% | parameters | seconds | growth seconds (share) | seconds to reach the target's final accuracy (per seed) | that time / the target's own time to it | the same to within {points} points of it (per seed) | that time / the target's own |"
        line "|---|---|---|---|---|---|---|---|---|---|"
    for row in rows do
        let runs = [ for _, r in results -> r[row.Name] ]
        let acc, accSd = meanStd [ for r in runs -> 100.0 * r.Summary.TestAccuracy ]
        let pars, parsSd = meanStd [ for r in runs -> float r.Summary.Parameters ]
        let secs, secsSd = meanStd [ for r in runs -> r.Summary.Seconds ]
        let growth, growthSd = meanStd [ for r in runs -> r.Summary.GrowthSeconds ]
        let share = 100.0 * List.average [ for r in runs -> r.Summary.GrowthSeconds / r.Summary.Seconds ]
        let widths = String.Join (", ", [ for r in runs -> String.Join ("/", r.Summary.Widths) ])
        let reach, ratio = reachText row (timesToTarget results row 0.0)
        let within =
            match tolerance with
            | None -> ""
            | Some points -> let r, q = reachText row (timesToTarget results row points) in $" {r} | {q} |"
        line (sprintf "| %s | %s | %.2f ± %.2f | %.0f ± %.0f | %.1f ± %.1f | %.1f ± %.1f (%.0f %%) | %s | %s |%s"
                  row.Name widths acc accSd pars parsSd secs secsSd growth growthSd share reach ratio within)
    line ""
    if results.Length < planned.Length then
        line $"**Partial: {results.Length} of the {planned.Length} planned seeds** (the table is written after each seed; this run was stopped or is still going)."
        line ""
    line "Seconds to reach: the end of the first epoch whose test accuracy reaches the target row's final test accuracy on the same seed (\"—\": not within the run); seconds include the per-epoch test evaluation."
    w.ToString ()

/// tableWithin without a tolerance column.
let table = tableWithin None

/// Replaces the section `<!-- bench:name -->` … `<!-- /bench:name -->` of `path` with `body`
/// (appended at the end when the file has no such section yet). Written to a temporary file and
/// moved over, so an interrupted write leaves the old file.
let writeSection (path: string) (name: string) (body: string) =
    let openMark, closeMark = $"<!-- bench:{name} -->", $"<!-- /bench:{name} -->"
    let text = if File.Exists path then File.ReadAllText path else ""
    let block = $"{openMark}\n{body.TrimEnd ()}\n{closeMark}"
    let i, j = text.IndexOf openMark, text.IndexOf closeMark
    let updated =
        if i >= 0 && j > i then text.Substring (0, i) + block + text.Substring (j + closeMark.Length)
        elif i >= 0 || j >= 0 then invalidOp $"{path} has a broken bench:{name} section (one marker without the other); mend it by hand."
        else (if text = "" || text.EndsWith "\n\n" then text elif text.EndsWith "\n" then text + "\n" else text + "\n\n") + block + "\n"
    let temporary = path + ".tmp"
    File.WriteAllText (temporary, updated)
    File.Move (temporary, path, true)

/// The headline of a table written by `table`: its rows, then its provenance line ("Measured by …"), for
/// the README, which shows the current MLP table without the protocol paragraph.
let headline (text: string) =
    let lines = text.Split '\n'
    let rows = lines |> Array.filter (fun l -> l.StartsWith "|")
    let provenance = lines |> Array.filter (fun l -> l.StartsWith "Measured by")
    String.concat "\n" rows + "\n\n" + String.concat "\n" provenance

/// Replaces the `<!-- bench:name -->` section of `path` with `body` when the file has one; a file without
/// it is left alone (unlike writeSection, which appends the section).
let replaceSection (path: string) (name: string) (body: string) =
    if File.Exists path && (File.ReadAllText path).Contains $"<!-- bench:{name} -->" then writeSection path name body

/// The README.md of the repository whose `docs/` folder holds `results` (docs/results.md → README.md).
let readmeOf (results: string) =
    Path.Combine (Path.GetDirectoryName (Path.GetFullPath results) |> nonNull, "..", "README.md") |> Path.GetFullPath

