/// Figures for docs/, drawn from runs' metrics.jsonl with ScottPlot (headless PNG).
module TinyGrow.Bench.Plots

open System.IO
open System.Text.Json

/// (seconds, test accuracy %, parameters) of each epoch line of a run's metrics.jsonl.
let epochs (runDirectory: string) =
    [| for e in TinyGrow.Core.MetricsSchema.Events (Path.Combine (runDirectory, "metrics.jsonl")) do
        if e.GetProperty("event").GetString () = "epoch" then
            yield e.GetProperty("seconds").GetDouble (),
                  100.0 * e.GetProperty("test_accuracy").GetDouble (),
                  float (e.GetProperty("parameters").GetInt64 ()) |]

/// One figure per quantity (test accuracy, parameters) against wall time, one line per run:
/// `<stem>-accuracy.png` and `<stem>-parameters.png`.
let accuracyAndSize (stem: string) (title: string) (runs: (string * string) list) =
    let figure (suffix: string) (yLabel: string) (pick: float * float * float -> float) =
        let plot = new ScottPlot.Plot ()
        for name, dir in runs do
            let points = epochs dir
            let line = plot.Add.Scatter (points |> Array.map (fun (s, _, _) -> s), points |> Array.map pick)
            line.LegendText <- name
        plot.Title title
        plot.XLabel "seconds"
        plot.YLabel yLabel
        plot.ShowLegend () |> ignore
        plot.SavePng ($"{stem}-{suffix}.png", 800, 450) |> ignore
    figure "accuracy" "test accuracy (%)" (fun (_, a, _) -> a)
    figure "parameters" "parameters (thousands)" (fun (_, _, n) -> n / 1000.0)
