/// What every bench mode measures with: wall seconds of a call, medians of repetitions, mean ± sample
/// standard deviation over seeds.
module TinyGrow.Bench.Measure

open System.Diagnostics

/// Wall seconds of `f ()`.
let elapsed (f: unit -> unit) =
    let sw = Stopwatch.StartNew ()
    f ()
    sw.Elapsed.TotalSeconds

/// `f ()`'s result and its wall seconds.
let timed (f: unit -> 'a) =
    let sw = Stopwatch.StartNew ()
    let r = f ()
    r, sw.Elapsed.TotalSeconds

/// The middle value (the upper one of an even count).
let median (xs: float list) = xs |> List.sort |> List.item (List.length xs / 2)

/// Mean and sample standard deviation (0 for a single value).
let meanStd (xs: float list) =
    let n = float xs.Length
    let m = List.average xs
    let s = if xs.Length < 2 then 0.0 else sqrt (List.sumBy (fun x -> (x - m) ** 2.0) xs / (n - 1.0))
    m, s
