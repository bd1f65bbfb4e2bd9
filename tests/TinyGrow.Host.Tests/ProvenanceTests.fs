/// A run records which files its dataset was read from, and refuses before building anything when
/// it cannot fit in memory at its largest widths (issue 8).
module TinyGrow.Host.Tests.ProvenanceTests

open System
open System.IO
open System.Text.Json
open Expecto
open Microsoft.Extensions.Logging
open Microsoft.Extensions.Configuration
open TinyGrow.Abstractions
open TinyGrow.Host
open TinyGrow.Host.Commands
open TinyGrow.Host.Tests.TestUtil

let private run (settings: Configuration.TinyGrowSettings) catalogue =
    let messages = Collections.Concurrent.ConcurrentQueue<LogLevel * string>()
    let loggers = RunGuardTests.listening (fun level m -> messages.Enqueue((level, m)))
    let exit =
        RunCommand(settings, catalogue, loggers, TimeProvider.System).ExecuteAsync(Threading.CancellationToken.None)
        |> Async.AwaitTask |> Async.RunSynchronously
    exit, List.ofSeq messages

let private mnistRun (data: TempFolder) (extra: (string * string) list) =
    settingsFrom ([
        "Dataset:Name", "mnist"; "Dataset:Root", data.Path
        "Model:Layers:0:Kind", "dense"; "Model:Layers:0:Width", "2"; "Model:Layers:0:MaxWidth", "2"
        "Growth:Strategy", "none"; "Training:Epochs", "1"; "Training:BatchSize", "20"
        "Device", "cpu"; "Output:Directory", data.File "runs"; "Output:RunId", "r" ] @ extra)

/// The estimate's terms for a dataset of this shape whose tensors hold nothing.
let private termsFor settings (shape: int64[]) classes =
    let empty () = new DataSplit(TorchSharp.torch.zeros(0L), TorchSharp.torch.zeros(0L))
    use data = new LoadedDataset("x", empty (), empty (), shape, classes, StoredInputs.Instance)
    MemoryEstimate.Terms(settings, data) |> fst |> nonNull

/// The estimate's parameter count (the layers' terms).
let private parameters settings (shape: int64[]) classes =
    termsFor settings shape classes |> Seq.sumBy (fun t -> t.Parameters)

let private experiments = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "experiments"))

let tests =
    testList "provenance and memory" [
        test "config.json and the log name exactly the files each split was read from (path, size, origin)" {
            use data = new TempFolder()
            let mnist = Directory.CreateDirectory(data.File "mnist").FullName
            EndToEndTests.writeMnist mnist "train" 40 21
            EndToEndTests.writeMnist mnist "t10k" 10 22
            // Another dataset's files beside it are not read, and not listed.
            File.WriteAllText(Path.Combine(mnist, "unrelated.bin"), "x")
            let _, catalogue = discover [ EndToEndTests.shippedPlugins ]
            let exit, messages = run (mnistRun data []) catalogue
            Expect.equal exit ExitCodes.Ok "exit 0"
            let config = JsonDocument.Parse(File.ReadAllText(Path.Combine(data.File "runs", "r", "config.json"))).RootElement
            let listed =
                [ for f in config.GetProperty("DatasetFiles").EnumerateArray() ->
                    f.GetProperty("Split").GetString(), f.GetProperty("Path").GetString(), f.GetProperty("Bytes").GetInt64(), f.GetProperty("Origin").GetString() ]
            let expected =
                [ for split, name in [ "train", "train-images-idx3-ubyte"; "train", "train-labels-idx1-ubyte"; "test", "t10k-images-idx3-ubyte"; "test", "t10k-labels-idx1-ubyte" ] ->
                    let path = Directory.GetFiles(mnist, name + "*") |> Array.exactlyOne
                    split, path, FileInfo(path).Length, "Root" ]
            Expect.equal listed expected "the four IDX files, absolute, with their sizes, from Dataset:Root"
            for _, path, bytes, _ in expected do
                Expect.isTrue (messages |> List.exists (fun (_, m) -> m.Contains path && m.Contains $"{bytes} bytes" && m.Contains "from Dataset:Root")) $"the log names {path}"
            // The plugins that served the run: assembly, version, file and its SHA-256.
            let plugins = [ for p in config.GetProperty("LoadedPlugins").EnumerateArray() -> string (p.GetProperty("Name").GetString()), string (p.GetProperty("Path").GetString()), string (p.GetProperty("Sha256").GetString()) ]
            Expect.isTrue (plugins |> List.exists (fun (n, _, _) -> n = "Datasets.Mnist")) $"the dataset plugin is recorded ({plugins})"
            for _, path, sha in plugins do
                let expected = Convert.ToHexStringLower(Security.Cryptography.SHA256.HashData(File.ReadAllBytes path))
                Expect.equal sha expected $"{path}: its SHA-256"
            // The records are not settings, but the file stays a valid experiment (resume, repeat).
            let json = Configuration.ConfigurationLayers.ReadJson(Path.Combine(data.File "runs", "r", "config.json"), false, "experiment")
            let asExperiment = ConfigurationBuilder().AddInMemoryCollection(json.Values).Build()
            Expect.isEmpty (Configuration.StrictKeys.Problems asExperiment) "config.json passes strict configuration"
        }

        test "a run that would need hundreds of GB at its MaxWidths exits 2 naming the keys, before anything is built or written" {
            use data = new TempFolder()
            let mnist = Directory.CreateDirectory(data.File "mnist").FullName
            EndToEndTests.writeMnist mnist "train" 40 23
            EndToEndTests.writeMnist mnist "t10k" 10 24
            let _, catalogue = discover [ EndToEndTests.shippedPlugins ]
            // Two 3×3 convs of 16,384 channels: one junction's S alone is (16,384·9)² float64 = 174 GB.
            let settings =
                mnistRun data [
                    "Growth:Strategy", "tiny"
                    "Model:Layers:0:Kind", "conv"; "Model:Layers:0:Width", "1"; "Model:Layers:0:MaxWidth", "16384"
                    "Model:Layers:1:Kind", "conv"; "Model:Layers:1:Width", "1"; "Model:Layers:1:MaxWidth", "16384" ]
            let exit, messages = run settings catalogue
            Expect.equal exit ExitCodes.BadConfiguration "exit 2"
            let error = messages |> List.filter (fun (l, _) -> l = LogLevel.Error) |> List.map snd |> String.concat "\n"
            Expect.stringContains error "Model:Layers:0:MaxWidth" "names the key that drives the estimate"
            Expect.stringContains error "GB" "says how much"
            Expect.isFalse (Directory.Exists(data.File "runs")) "no run folder"
        }

        test "the estimate counts parameters exactly: the default MLP and ResNet-18 (11,173,962)" {
            let mlp = settingsFrom [ "Model:Layers:0:Kind", "dense"; "Model:Layers:0:MaxWidth", "256"; "Model:Layers:1:Kind", "dense"; "Model:Layers:1:MaxWidth", "256" ]
            Expect.equal (parameters mlp [| 1L; 28L; 28L |] 10) (256.0 * 785.0 + 256.0 * 257.0 + 10.0 * 257.0) "784→256→256→10 with biases"
            let resnet = settingsFrom [ "Model:Preset", "resnet18" ]
            Expect.equal (parameters resnet [| 3L; 32L; 32L |] 10) 11_173_962.0 "ResNet-18 (CIFAR form) at full width"
        }

        test "the shipped experiments and the default are estimated well below a small machine's memory (logged at Information by a run)" {
            let cases =
                [ yield "default", settingsFrom [], [| 1L; 28L; 28L |], 10
                  for file, shape in [ "fashion-mnist-cnn.json", [| 1L; 28L; 28L |]; "cifar10-vgg.json", [| 3L; 32L; 32L |]
                                       "cifar10-dense.json", [| 3L; 32L; 32L |]; "cifar10-resnet18.json", [| 3L; 32L; 32L |] ] ->
                      let json = Configuration.ConfigurationLayers.ReadJson(Path.Combine(experiments, file), false, "experiment")
                      file, Configuration.TinyGrowSettings.Bind(ConfigurationBuilder().AddInMemoryCollection(json.Values).Build()), shape, 10 ]
            for name, settings, shape, classes in cases do
                let total = termsFor settings shape classes |> Seq.sumBy (fun t -> t.Bytes)
                printfn "memory estimate without the dataset, %s: %s" name (MemoryEstimate.Text total)
                Expect.isLessThan total 4e9 $"{name}: under 4 GB"
        }

        test "the memory refusal compares with what is available plus the dataset already loaded" {
            let terms = [ MemoryTerm("weights", "Model:Layers:0:MaxWidth", 8e9); MemoryTerm("data", "Dataset:Name", 1e9) ]
            Expect.isNone (Option.ofObj (MemoryEstimate.Refusal(terms, 9e9, 1e9, "test"))) "9 GB of 10·0.9 GB: fits"
            let refused = MemoryEstimate.Refusal(terms, 8e9, 1e9, "test") |> nonNull
            Expect.stringContains refused "Model:Layers:0:MaxWidth" "names the key"
            Expect.isFalse (refused.Contains "Dataset:Name") "only the keys that drive most of it"
        }
    ]
