/// `strategies [EPOCHS [SEED ...]]`: the Fashion-MNIST MLP (784 → 1 → 1 → 10, tanh) grown from one
/// neuron per layer with `tiny` under the default growth and training options; `gradmax` and
/// `random` grown from one neuron to tiny's final widths (MaxWidth = those widths, same schedule);
/// the fixed network of tiny's final widths trained from scratch; same optimizer and epochs for all.
module TinyGrow.Bench.Strategies

open System
open TinyGrow.Abstractions
open TinyGrow.Growth.Strategies
open TinyGrow.Bench.Comparison

let private fixedName = "fixed at tiny's widths"

/// `model`: the starting network (one neuron per layer) with its MaxWidth caps.
let rows (data: LoadedDataset) (model: ModelOptions) (training: int -> TrainingOptions) (growth: GrowthOptions) =
    let toTinysWidths name strategy = grownToWidthsOf "tiny" fixedName name strategy data model training growth
    [ { Name = "tiny"; Target = fixedName; Run = fun seed _ -> train data (TinyStrategy ()) model (training seed) growth }
      toTinysWidths "gradmax" (fun () -> GradMaxStrategy ())
      toTinysWidths "random" (fun () -> RandomStrategy ())
      { Name = fixedName; Target = ""
        Run = fun seed earlier ->
                  train data null (withWidths model earlier["tiny"].Summary.Widths true) (training seed) (GrowthOptions (Strategy = "none")) } ]

/// Runs the rows and writes the table into the `strategies` section of `results`.
let run (data: LoadedDataset) (model: ModelOptions) (epochs: int) (seeds: int list) (results: string) =
    let training seed = TrainingOptions (Epochs = epochs, Seed = int64 seed)
    let growth = GrowthOptions ()
    let rows = rows data model training growth
    let t = training 1
    let inputs = Array.fold (*) 1L data.InputShape
    let protocol =
        $"{data.Name}, MLP {inputs}→1→1→{data.Classes} (tanh), grown from one neuron per layer; the default training options ({t.Optimizer} {t.LearningRate}, batch {t.BatchSize}, cosine schedule {t.CosineSchedule}) for {epochs} epochs and the default growth options (StepsPerEpoch {growth.StepsPerEpoch}, UntilEpoch {growth.UntilEpoch}, NeuronsPerStep {growth.NeuronsPerStep}, SignificanceTest {growth.SignificanceTest}, StopAfterEmptySteps {growth.StopAfterEmptySteps}). gradmax and random grow from one neuron with MaxWidth set to tiny's final widths of the same seed; the fixed network has tiny's final widths and is trained from scratch. Command: `make bench ARGS=\"strategies {epochs} {String.Join (' ', seeds)}\"`."
    let write measured before after =
        let text = table "Strategies: Fashion-MNIST MLP" protocol rows seeds measured before after
        printfn "%s" text
        writeSection results "strategies" text
        // The README's "Where it stands" shows the same rows (its bench:headline section): the README of
        // the repository whose docs/ holds `results`, so that a results file elsewhere touches no README.
        replaceSection (readmeOf results) "headline" (headline text)
    measure rows seeds write |> ignore
