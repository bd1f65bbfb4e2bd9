/// Size and write time of a checkpoint (checkpoint.bin: weights, buffers, SGD momentum, generator
/// states, a 50,000-sample permutation) for ResNet-18 at full width on CIFAR-shaped inputs; the
/// verify-and-read time too. `make bench ARGS=checkpoint-cost`.
module TinyGrow.Bench.CheckpointCost

open System
open System.Diagnostics
open System.IO
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Bench.Measure

let run (preset: string) (widthFraction: float) =
    use generator = new torch.Generator (1UL)
    let model = ModelOptions (Preset = preset, WidthFraction = widthFraction)
    use net = Network.Build (Kinds.blockKinds, Kinds.layerKinds, model, [| 3L; 32L; 32L |], 10, torch.CPU, torch.ScalarType.Float32, generator)
    let optimizer = Sgd ((fun () -> net.Parameters), 0.9, 5e-4) :> IOptimizer
    // One step, so that the momentum buffers exist (a checkpoint after training holds them).
    (use scope = torch.NewDisposeScope ()
     let x = torch.randn ([| 8L; 3L; 32L; 32L |], generator = generator)
     let y = torch.randint (10L, [| 8L |], generator = generator)
     Training.trainStep net optimizer 0.01 x y |> ignore)
    use order = torch.randperm (50_000L, generator = generator)
    use augmentation = new torch.Generator (2UL)
    let generators = [| generator; augmentation |]
    let dir = Directory.CreateTempSubdirectory("tinygrow-checkpoint-").FullName
    try
        let state = RunState.Start ()
        let writes =
            [ for _ in 1 .. 5 ->
                let sw = Stopwatch.StartNew ()
                let size = Checkpoint.write dir net [| 3L; 32L; 32L |] 10 optimizer generators order state
                size, sw.Elapsed.TotalSeconds ]
        let reads =
            [ for _ in 1 .. 5 ->
                let sw = Stopwatch.StartNew ()
                match Checkpoint.latest dir with
                | Some path, _ ->
                    use r = new Checkpoint.Reader (path)
                    use copy = Network.BuildBlocks (Kinds.blockKinds, Kinds.layerKinds, r.Header.Blocks, r.Header.InputShape, r.Header.Classes, torch.CPU, torch.ScalarType.Float32, null)
                    r.LoadNetwork copy
                    r.LoadOptimizer (copy, Sgd ((fun () -> copy.Parameters), 0.9, 5e-4))
                    r.LoadGenerators [| new torch.Generator (0UL); new torch.Generator (0UL) |]
                    (r.LoadOrder torch.CPU |> fun o -> match o with null -> () | o -> o.Dispose ())
                | None, refused -> failwithf "no checkpoint: %A" refused
                sw.Elapsed.TotalSeconds ]
        printfn "%s at width fraction %g: %d parameters, widths %s" preset widthFraction net.ParameterCount (String.Join ("/", net.Widths))
        printfn "checkpoint.bin: %.1f MB; write (temporary file, SHA-256, fsync, rename) median of 5: %.3f s (min %.3f); verify + read median of 5: %.3f s"
            (float (fst writes.Head) / 1e6) (median (List.map snd writes)) (List.min (List.map snd writes)) (median reads)
    finally
        Directory.Delete (dir, true)
