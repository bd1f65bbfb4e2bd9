module TinyGrow.Bench.Program

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open Microsoft.Extensions.Logging.Abstractions
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Growth.Linear
open TinyGrow.Growth.Strategies
open TinyGrow.Datasets.Mnist

let kinds = Dictionary<string, ILayerKind> (dict [ "dense", DenseKind () :> ILayerKind ]) :> IReadOnlyDictionary<_, _>

let loadFashion () =
    (MnistDatasetProvider () :> IDatasetProvider).Load ("fashion-mnist", DatasetOptions (Root = "data"), torch.CPU)

let model (widths: int list) (activation: string) =
    ModelOptions (Layers = ResizeArray [ for w in widths -> LayerSpec (Kind = "dense", Width = w, MaxWidth = 256, Activation = activation) ])

[<EntryPoint>]
let main argv =
    match argv |> Array.toList with
    | [ "smoke"; activation; epochs; threshold; steps ] ->
        use data = loadFashion ()
        let dir = Path.Combine (Path.GetTempPath (), "tinygrow-smoke")
        Directory.CreateDirectory dir |> ignore
        let engine = GrowthEngine (kinds, TinyStrategy (), NullLogger.Instance)
        let s = engine.Run (data, model [ 1; 1 ] activation, TrainingOptions (Epochs = int epochs), GrowthOptions (RelativeThreshold = float threshold, StepsPerEpoch = int steps), torch.CPU, dir, Threading.CancellationToken.None)
        printfn "%A" s
        for l in File.ReadLines (Path.Combine (dir, "metrics.jsonl")) do
            if l.Contains "epoch\":" && not (l.Contains "\"added\":0") then printfn "%s" l
        0
    | _ ->
        eprintfn "usage: TinyGrow.Bench smoke"
        2
