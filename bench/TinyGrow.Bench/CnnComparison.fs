/// `cnn [EPOCHS [SEED ...]]`: experiments/fashion-mnist-cnn.json grown with `tiny`, `gradmax` and
/// `random` grown from the same start to tiny's final widths, and the same CNN fixed at tiny's final
/// widths and trained from scratch, all with the experiment's options.
module TinyGrow.Bench.CnnComparison

open System
open System.IO
open System.Text.Json
open TinyGrow.Abstractions
open TinyGrow.Growth.Strategies
open TinyGrow.Bench.Comparison

/// One section of an experiment file bound to its option class (PascalCase keys, as the host binds them).
let section<'T> (experiment: string) (name: string) : 'T =
    use doc = JsonDocument.Parse (File.ReadAllText experiment)
    match doc.RootElement.TryGetProperty name with
    | true, e -> fromJson<'T> $"{experiment}: {name}" (e.GetRawText ())
    | _ -> invalidArg "experiment" $"{experiment} has no \"{name}\" section."

let private fixedName = "fixed at tiny's widths"

/// tiny; gradmax and random grown to tiny's widths of the same seed; the CNN fixed at those widths.
let rows (data: LoadedDataset) (model: ModelOptions) (training: int -> TrainingOptions) (growth: GrowthOptions) =
    let toTinysWidths name strategy = grownToWidthsOf "tiny" fixedName name strategy data model training growth
    [ { Name = "tiny"; Target = fixedName; Run = fun seed _ -> train data (TinyStrategy ()) model (training seed) growth }
      toTinysWidths "gradmax" (fun () -> GradMaxStrategy ())
      toTinysWidths "random" (fun () -> RandomStrategy ())
      { Name = fixedName; Target = ""
        Run = fun seed earlier ->
                  train data null (withWidths model earlier["tiny"].Summary.Widths true) (training seed) (GrowthOptions (Strategy = "none")) } ]

let run (data: LoadedDataset) (experiment: string) (epochs: int option) (seeds: int list) (results: string) =
    let model = section<ModelOptions> experiment "Model"
    let growth = section<GrowthOptions> experiment "Growth"
    let base' = section<TrainingOptions> experiment "Training"
    let epochs = defaultArg epochs base'.Epochs
    let training = trainingFor base' epochs
    let rows = rows data model training growth
    let protocol =
        $"{data.Name}, the CNN of `{experiment}` (starting widths {String.Join ('/', [ for l in model.Layers -> l.Width ])}, GAP head) with its growth and training options, {epochs} epochs (the file says {base'.Epochs}); gradmax and random grow from the same start with MaxWidth set to tiny's final widths of the same seed; the fixed CNN has tiny's final widths and is trained from scratch. Command: `make bench ARGS=\"cnn {epochs} {String.Join (' ', seeds)}\"`."
    let write measured before after =
        let text = table "Fashion-MNIST CNN: tiny, gradmax, random and fixed" protocol rows seeds measured before after
        printfn "%s" text
        writeSection results "cnn" text
    measure rows seeds write |> ignore
