/// `growth-cost [SEED ...]`: issue 23's table. Three runs, each with the input statistics cache cold (an empty
/// cache folder) and then warm (the folder the cold run filled):
///   the default run (`make run`: src/Host/appsettings.json, Fashion-MNIST MLP);
///   `experiments/cifar10-dense.json` on the bench's generated CIFAR-10 files;
///   the same on generated files with a strong label signal (a network that stays small).
/// Each run is the application itself (`tinygrow run`, a copy of artifacts/tinygrow taken at the start so that a
/// build meanwhile changes nothing), as a user runs it, on one torch thread; its share is growth_seconds / seconds
/// of the run's `final` line. Seeds outermost, so that machine load falls on every row alike. The generated
/// files are written (bench/scripts/generated-cifar10.py) when their folder is missing.
module TinyGrow.Bench.GrowthCost

open System
open System.Diagnostics
open System.IO
open System.Text
open TinyGrow.Core
open TinyGrow.Bench.Measure

/// One row's run setting: what is passed to `tinygrow run` besides the seed, the folders and the thread count.
type private Setting = { Name: string; Arguments: string list }

/// What a finished run's `final` line says, and the seconds its log gives the input covariance on the growth path.
type private Outcome = { Accuracy: float; Widths: int[]; Seconds: float; GrowthSeconds: float; InputCovarianceSeconds: float; AheadSeconds: float }

/// The generated CIFAR-10 files of `signal` (the generator's class-pattern spread) under `root`, written when missing.
let private generatedCifar (root: string) (signal: int) =
    let batches = Path.Combine (root, "cifar10", "cifar-10-batches-bin", "test_batch.bin")
    if not (File.Exists batches) then
        eprintfn "growth-cost: writing generated CIFAR-10 files (signal %d) to %s" signal root
        let p = Process.Start (ProcessStartInfo ("/usr/bin/python3", $"bench/scripts/generated-cifar10.py {root} {signal}"))
        match p with
        | null -> failwith "growth-cost: could not start /usr/bin/python3 for bench/scripts/generated-cifar10.py."
        | p ->
            use p = p
            p.WaitForExit ()
            if p.ExitCode <> 0 then
                failwith $"growth-cost: bench/scripts/generated-cifar10.py {root} {signal} failed (exit {p.ExitCode}); it needs /usr/bin/python3 with numpy (apt-get install python3-numpy)."
    root

/// Seconds of the input covariance on the growth path, and those of its computation ahead on a spare core (NaN:
/// not computed ahead), from the run's log. Computed ahead (InputCovariancesAhead): what the first growth step
/// waited for it, and the copy for the cache write (cold). Otherwise the "Input covariance of junction …" lines, summed over junctions: computed, S2 + its
/// factor + the copy for the background write + hashing the inputs; read from the cache, the read + hashing the
/// inputs (the key). NaN when the log has no such line.
let private inputCovarianceSeconds (log: string) =
    let number (m: RegularExpressions.Match) (i: int) = float m.Groups[i].Value
    let ahead = RegularExpressions.Regex.Match (log, @"Input covariances computed ahead on \d+ spare CPU thread\(s\) in ([\d.]+) s, .*?waited ([\d.]+) s")
    if ahead.Success then
        // The tensors copied for the cache write when the run takes them (cold) are on its path too.
        let copies = RegularExpressions.Regex.Matches (log, @"computed ahead: S2 .*?copied for it in ([\d.]+) s") |> Seq.sumBy (fun m -> number m 1)
        number ahead 2 + copies, number ahead 1
    else
        let computed =
            RegularExpressions.Regex.Matches (log, @"S2 on \d+ samples in ([\d.]+) s, whitening by .*? in ([\d.]+) s; .*?(?:copied for it in ([\d.]+) s; )?inputs hashed in ([\d.]+) s\)")
            |> Seq.sumBy (fun m -> number m 1 + number m 2 + (if m.Groups[3].Success then number m 3 else 0.0) + number m 4)
        let read =
            RegularExpressions.Regex.Matches (log, @"read from the cache \S+ in ([\d.]+) s \(inputs hashed in ([\d.]+) s\)")
            |> Seq.sumBy (fun m -> number m 1 + number m 2)
        (if log.Contains "Input covariance of junction" then computed + read else nan), nan

/// The `final` line of a run folder's metrics.jsonl (read with the product's own reader, which checks its schema).
let private finalOf (runFolder: string) =
    let final =
        MetricsSchema.Events (Path.Combine (runFolder, "metrics.jsonl"))
        |> List.tryFindBack (fun e -> e.GetProperty("event").GetString () = "final")
    match final with
    | None -> failwith $"growth-cost: {runFolder}/metrics.jsonl has no final line."
    | Some r ->
        { Accuracy = r.GetProperty("test_accuracy").GetDouble ()
          Widths = [| for w in r.GetProperty("widths").EnumerateArray () -> w.GetInt32 () |]
          Seconds = r.GetProperty("seconds").GetDouble ()
          GrowthSeconds = r.GetProperty("growth_seconds").GetDouble ()
          InputCovarianceSeconds = nan
          AheadSeconds = nan }

/// Runs `tinygrow run` (the copy in `app`) once; its folder and log are kept under `runs` for inspection.
let private runOnce (app: string) (runs: string) (id: string) (cache: string) (seed: int) (setting: Setting) =
    let arguments =
        [ $"{app}/tinygrow.dll"; "run"; $"--Training:Seed={seed}"; "--Training:Threads=1"; $"--Output:Directory={runs}"
          $"--Output:RunId={id}"; "--Output:Progress=plain"; $"--Output:CacheDirectory={cache}" ] @ setting.Arguments
    let info = ProcessStartInfo ("dotnet", RedirectStandardOutput = true, RedirectStandardError = true)
    for a in arguments do info.ArgumentList.Add a
    // TINYGROW_* variables are the application's configuration (strict: an unknown key is an error).
    for key in [ for k in Environment.GetEnvironmentVariables().Keys -> string k ] do
        if key.StartsWith "TINYGROW_" then info.Environment.Remove key |> ignore
    let folder = Path.Combine (runs, id)
    // A bench stopped half way leaves the run's .partial folder, which the next run of the id would refuse.
    for f in [ folder; folder + ".partial" ] do if Directory.Exists f then Directory.Delete (f, true)
    match Process.Start info with
    | null -> failwith "growth-cost: could not start dotnet."
    | p ->
        use p = p
        let output = p.StandardOutput.ReadToEndAsync ()
        let errors = p.StandardError.ReadToEndAsync ()
        p.WaitForExit ()
        let log = output.Result + errors.Result
        File.WriteAllText (Path.Combine (runs, id + ".log"), log)
        if p.ExitCode <> 0 then failwith $"growth-cost: run {id} failed (exit {p.ExitCode}); see {runs}/{id}.log."
        let onPath, ahead = inputCovarianceSeconds log
        { finalOf folder with InputCovarianceSeconds = onPath; AheadSeconds = ahead }

let private share (o: Outcome) = 100.0 * o.GrowthSeconds / o.Seconds

/// The table of the seeds done so far: one row per setting and cache state.
let private table (settings: Setting list) (results: (int * Map<string * string, Outcome>) list) (loadBefore: string) (planned: int) =
    let w = new StringWriter ()
    let line (s: string) = w.WriteLine s
    let seeds = [ for s, _ in results -> s ]
    line "### Growth cost cold and warm: the default run and CIFAR-dense on two generated file sets"
    line ""
    line "Each run is `tinygrow run` as a user runs it, on one torch thread; cold: an empty input statistics cache folder (`Output:CacheDirectory`); warm: the folder the cold run of the same seed filled. Growth share = `growth_seconds` / `seconds` of the run's `final` line. CIFAR-dense is `experiments/cifar10-dense.json` as shipped (30 epochs) on files from `bench/scripts/generated-cifar10.py` (the bench's: signal 12; strong: signal 40). Target: growth ≤ 5 % of each run, cold. Command: `make bench ARGS=\"growth-cost 1 2 3\"`."
    line ""
    let now = DateTime.UtcNow.ToString "yyyy-MM-dd HH:mm"
    let seedList = String.Join (", ", seeds)
    line $"Measured by `make bench` on {Environment.MachineName}, {Environment.ProcessorCount} cores, one torch thread per run, shared with other jobs (load average {loadBefore} at the start, {Comparison.loadAverage ()} when this table was written); commit {Comparison.commit ()}; {now} UTC; seeds {seedList}, mean ± sample std over them."
    line ""
    line "| run | cache | widths (per seed) | test accuracy % | run seconds | growth seconds | of which the input covariance | input covariance ahead, on a spare core | growth share (per seed) | share ≤ 5 % |"
    line "|---|---|---|---|---|---|---|---|---|---|"
    for setting in settings do
        for cache in [ "cold"; "warm" ] do
            let runs = [ for _, r in results -> r[(setting.Name, cache)] ]
            let acc, accSd = meanStd [ for o in runs -> 100.0 * o.Accuracy ]
            let secs, secsSd = meanStd [ for o in runs -> o.Seconds ]
            let growth, growthSd = meanStd [ for o in runs -> o.GrowthSeconds ]
            let input, inputSd = meanStd [ for o in runs -> o.InputCovarianceSeconds ]
            let ahead, aheadSd = meanStd [ for o in runs -> o.AheadSeconds ]
            let shares = [ for o in runs -> share o ]
            let sh, shSd = meanStd shares
            let widths = String.Join (", ", [ for o in runs -> String.Join ("/", o.Widths) ])
            let perSeed = String.Join (", ", [ for s in shares -> sprintf "%.1f" s ])
            let met = shares |> List.filter (fun s -> s <= 5.0) |> List.length
            let aheadText = if Double.IsNaN ahead then "—" else sprintf "%.2f ± %.2f" ahead aheadSd
            line (sprintf "| %s | %s | %s | %.2f ± %.2f | %.1f ± %.1f | %.2f ± %.2f | %.2f ± %.2f | %s | %.1f ± %.1f %% (%s) | %d of %d |"
                      setting.Name cache widths acc accSd secs secsSd growth growthSd input inputSd aheadText sh shSd perSeed met runs.Length)
    line ""
    if results.Length < planned then
        line $"**Partial: {results.Length} of the {planned} planned seeds** (the table is written after each seed)."
        line ""
    line "Of which the input covariance: from each run's log, what the first growth step waited for the input covariances computed ahead on a spare core from the moment the dataset was loaded (InputCovariancesAhead), and cold the copy for the cache write; without a spare core, cold the S2, its factor, the copy for the background write and the hash of the inputs, warm the entry's read and the hash of the inputs (its key). Input covariance ahead: the seconds of that computation on the spare core (cold: S2, factor, hash; warm: hash and read), not on the run's path and not in its growth seconds. A warm run's growth has no input-covariance term: it reads the entry (and hashes its inputs to find it) instead. Warm and cold runs of a seed, and runs that compute the covariances ahead or at the first step, grow the same network bit for bit (InputStatisticsCacheTests, InputCovariancesAheadTests), so their accuracies are equal."
    w.ToString ()

/// Runs every setting cold then warm for each seed and writes the table into `results` after each seed.
let run (seeds: int list) (results: string) =
    let work = Path.Combine (Path.GetTempPath (), "tinygrow-growth-cost")
    let bench = generatedCifar (Path.Combine (work, "cifar-bench")) 12
    let strong = generatedCifar (Path.Combine (work, "cifar-strong")) 40
    let app = Directory.CreateTempSubdirectory("tinygrow-growth-cost-app-").FullName
    try
        for file in Directory.EnumerateFiles ("artifacts/tinygrow", "*", SearchOption.AllDirectories) do
            let target = Path.Combine (app, Path.GetRelativePath ("artifacts/tinygrow", file))
            Directory.CreateDirectory (Path.GetDirectoryName target |> nonNull) |> ignore
            File.Copy (file, target)
        let settings =
            [ { Name = "default (`make run`)"; Arguments = [] }
              { Name = "CIFAR-dense, the bench's files"; Arguments = [ "--experiment"; "experiments/cifar10-dense.json"; $"--Dataset:Root={bench}" ] }
              { Name = "CIFAR-dense, strong-signal files"; Arguments = [ "--experiment"; "experiments/cifar10-dense.json"; $"--Dataset:Root={strong}" ] } ]
        let runs = Path.GetFullPath "runs/growth-cost"
        Directory.CreateDirectory runs |> ignore
        let loadBefore = Comparison.loadAverage ()
        let mutable done' = []
        for seed in seeds do
            let mutable outcomes = Map.empty
            for i, setting in List.indexed settings do
                let cache = Path.Combine (work, $"cache-{i}-s{seed}")
                if Directory.Exists cache then Directory.Delete (cache, true)
                for state in [ "cold"; "warm" ] do
                    let o = runOnce app runs $"run{i}-{state}-s{seed}" cache seed setting
                    eprintfn "seed %d %s, %s: %.2f %% at %s, %.1f s, growth %.2f s (%.1f %%)"
                        seed setting.Name state (100.0 * o.Accuracy) (String.Join ("/", o.Widths)) o.Seconds o.GrowthSeconds (share o)
                    outcomes <- outcomes.Add ((setting.Name, state), o)
                Directory.Delete (cache, true)
            done' <- done' @ [ seed, outcomes ]
            Comparison.writeSection results "growth-cost" (table settings done' loadBefore seeds.Length)
    finally Directory.Delete (app, true)
