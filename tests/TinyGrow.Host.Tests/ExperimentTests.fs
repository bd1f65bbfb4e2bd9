/// Every shipped experiment file runs: the built application, the file as shipped, cut to a few
/// batches (Dataset:TrainSamples/TestSamples, one epoch, small statistics) on generated files in the
/// official layouts (Fashion-MNIST IDX; full-size CIFAR-10 binary files, as the reader demands).
module TinyGrow.Host.Tests.ExperimentTests

open System
open System.IO
open System.Text.Json
open Expecto
open TinyGrow.Host
open TinyGrow.Host.Tests.TestUtil
open TinyGrow.Host.Tests.EndToEndTests

let private experiments = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "experiments"))

/// The six official CIFAR-10 files (10,000 records each) with random pixels and labels.
let private writeCifar10 (root: string) =
    let folder = Directory.CreateDirectory(Path.Combine(root, "cifar10", "cifar-10-batches-bin")).FullName
    let rng = Random 5
    for name in [ for i in 1 .. 5 -> $"data_batch_{i}.bin" ] @ [ "test_batch.bin" ] do
        let bytes = Array.zeroCreate<byte> (10_000 * 3073)
        rng.NextBytes bytes
        for r in 0 .. 9_999 do bytes[r * 3073] <- byte (rng.Next 10)
        File.WriteAllBytes(Path.Combine(folder, name), bytes)

let private smoke (file: string) (data: TempFolder) (extra: string list) =
    let code, stderr =
        runApp data.Path
            ([ "run"; "--experiment"; Path.Combine(experiments, file); $"--Dataset:Root={data.Path}"; "--Dataset:Download=false"
               "--Dataset:TrainSamples=96"; "--Dataset:TestSamples=32"; "--Training:Epochs=1"; "--Training:BatchSize=32"
               "--Growth:StepsPerEpoch=1"; "--Growth:UntilEpoch=1"; "--Growth:StatisticsSamples=48"; "--Growth:GammaSearchSamples=32"
               "--Device=cpu"; "--Output:Directory=runs"; "--Output:RunId=smoke" ] @ extra)
    Expect.equal code ExitCodes.Ok $"{file}: exit 0 (stderr: {stderr})"
    let lines = File.ReadAllLines(Path.Combine(data.Path, "runs", "smoke", "metrics.jsonl")) |> Array.map (fun l -> JsonDocument.Parse(l).RootElement)
    Expect.isTrue (lines |> Array.exists (fun e -> e.GetProperty("event").GetString() = "growth")) $"{file}: a growth step ran"
    Expect.equal (lines[lines.Length - 1].GetProperty("event").GetString()) "final" $"{file}: finished"

let tests =
    testList "experiments" [
        test "every experiment file is covered by a smoke test here" {
            let shipped = Directory.GetFiles(experiments, "*.json") |> Array.map Path.GetFileName |> Array.sort
            Expect.equal shipped [| "cifar10-dense.json"; "cifar10-resnet18.json"; "cifar10-vgg.json"; "fashion-mnist-cnn.json"; "fashion-mnist-resnet20.json"; "fashion-mnist-self-stopping.json"; "fixed-mlp.json"; "quick.json" |] "the list below is complete"
        }

        test "Fashion-MNIST experiments run a few batches (quick, fixed MLP, CNN, ResNet-20, self-stopping)" {
            use data = new TempFolder()
            let folder = Directory.CreateDirectory(data.File "fashion-mnist").FullName
            writeMnist folder "train" 96 11
            writeMnist folder "t10k" 32 12
            for file in [ "quick.json"; "fashion-mnist-cnn.json"; "fashion-mnist-resnet20.json"; "fashion-mnist-self-stopping.json" ] do
                smoke file data []
                Directory.Delete(data.File "runs", true)
            // The fixed network does not grow: only its finishing is checked.
            let code, stderr =
                runApp data.Path [ "run"; "--experiment"; Path.Combine(experiments, "fixed-mlp.json"); $"--Dataset:Root={data.Path}"; "--Dataset:Download=false"
                                   "--Training:Epochs=1"; "--Device=cpu"; "--Output:Directory=runs"; "--Output:RunId=fixed" ]
            Expect.equal code ExitCodes.Ok $"fixed-mlp.json: exit 0 (stderr: {stderr})"
        }

        test "CIFAR-10 experiments run a few batches on generated full-size files (dense, VGG-style CNN, ResNet-18 from 1/64)" {
            use data = new TempFolder()
            writeCifar10 data.Path
            for file, extra in [ "cifar10-dense.json", []
                                 "cifar10-vgg.json", []
                                 // One junction per step: a stage-4 block's S2 is 4,608² (float64 eigh: seconds each).
                                 "cifar10-resnet18.json", [ "--Growth:Selection=roundrobin" ] ] do
                smoke file data extra
                Directory.Delete(data.File "runs", true)
        }
    ]
