/// `run` end to end with the shipped plugins (as built into artifacts/tinygrow/plugins) on small
/// generated MNIST files: discovered, used, and the run folder holds what docs/run-folder.md promises.
module TinyGrow.Host.Tests.EndToEndTests

open System
open System.IO
open System.Text.Json
open Expecto
open Microsoft.Extensions.Logging.Abstractions
open TinyGrow.Host
open TinyGrow.Host.Commands
open TinyGrow.Host.Tests.TestUtil

/// artifacts/tinygrow of this checkout (the tests run from tests/<project>/bin/<config>/net10.0/).
let private app = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "artifacts", "tinygrow"))
let shippedPlugins = Path.Combine(app, "plugins")

/// Runs the built application `dotnet artifacts/tinygrow/tinygrow.dll args` in `workingDirectory`;
/// returns (exit code, standard error).
let runApp (workingDirectory: string) (args: string list) =
    let info = Diagnostics.ProcessStartInfo("dotnet", WorkingDirectory = workingDirectory, RedirectStandardError = true, RedirectStandardOutput = true)
    info.ArgumentList.Add(Path.Combine(app, "tinygrow.dll"))
    // Configuration tests set TINYGROW_* variables (some misspelt on purpose): not for this process.
    for name in info.Environment.Keys |> Seq.filter (fun k -> k.StartsWith "TINYGROW_") |> Seq.toList do
        info.Environment.Remove name |> ignore
    for a in args do info.ArgumentList.Add a
    use p =
        match Diagnostics.Process.Start info with
        | null -> failwith "could not start dotnet"
        | p -> p
    let stdout = p.StandardOutput.ReadToEndAsync()
    let stderr = p.StandardError.ReadToEnd()
    if not (p.WaitForExit 120_000) then
        p.Kill true
        p.WaitForExit ()
    stdout.Wait()
    p.ExitCode, stderr

let private bigEndian (value: int) =
    let b = BitConverter.GetBytes value
    if BitConverter.IsLittleEndian then Array.Reverse b
    b

/// IDX files of n random 28×28 images and labels 0..9 in `folder`.
let writeMnist (folder: string) (prefix: string) (n: int) (seed: int) =
    let rng = Random seed
    let pixels = Array.zeroCreate<byte> (n * 28 * 28)
    rng.NextBytes pixels
    let labels = Array.init n (fun i -> byte (i % 10))
    File.WriteAllBytes(Path.Combine(folder, prefix + "-images-idx3-ubyte"),
                      Array.concat [ bigEndian 0x803; bigEndian n; bigEndian 28; bigEndian 28; pixels ])
    File.WriteAllBytes(Path.Combine(folder, prefix + "-labels-idx1-ubyte"),
                      Array.concat [ bigEndian 0x801; bigEndian n; labels ])

let tests =
    testList "end to end" [
        test "a stop asked while the dataset loads (local files: the loader does not watch it) exits 130 with nothing written" {
            use data = new TempFolder()
            let mnist = Directory.CreateDirectory(data.File "mnist").FullName
            writeMnist mnist "train" 60 1
            writeMnist mnist "t10k" 20 2
            let _, catalogue = discover [ shippedPlugins ]
            let runs = data.File "runs"
            let settings =
                settingsFrom [
                    "Dataset:Name", "mnist"; "Dataset:Root", data.Path; "Dataset:Download", "false"
                    "Model:Layers:0:Kind", "dense"; "Model:Layers:0:Width", "1"; "Model:Layers:0:MaxWidth", "6"
                    "Training:Epochs", "1"; "Training:BatchSize", "20"
                    "Device", "cpu"; "Output:Directory", runs; "Output:RunId", "stopped" ]
            // SIGTERM during the load: the token is cancelled by the time the files have been read.
            use stop = new Threading.CancellationTokenSource()
            stop.Cancel()
            let exit =
                RunCommand(settings, catalogue, NullLoggerFactory.Instance, TimeProvider.System).ExecuteAsync(stop.Token)
                |> Async.AwaitTask |> Async.RunSynchronously
            Expect.equal exit ExitCodes.Cancelled "exit 130"
            Expect.isFalse (Directory.Exists runs) "no run folder, nothing written"
        }

        test "run with the shipped plugins grows a network and writes config, metrics and model" {
            Expect.isTrue (Directory.Exists shippedPlugins) $"shipped plugins built at {shippedPlugins}"
            use data = new TempFolder()
            let mnist = Directory.CreateDirectory(data.File "mnist").FullName
            writeMnist mnist "train" 60 1
            writeMnist mnist "t10k" 20 2
            let _, catalogue = discover [ shippedPlugins ]
            let runs = data.File "runs"
            let settings =
                settingsFrom [
                    "Dataset:Name", "mnist"; "Dataset:Root", data.Path
                    "Model:Layers:0:Kind", "dense"; "Model:Layers:0:Width", "1"; "Model:Layers:0:MaxWidth", "6"
                    "Model:Layers:0:Activation", "tanh"
                    "Growth:Strategy", "tiny"; "Growth:StepsPerEpoch", "2"; "Growth:UntilEpoch", "1"
                    "Growth:StatisticsSamples", "30"; "Growth:GammaSearchSamples", "30"
                    "Training:Epochs", "2"; "Training:BatchSize", "20"
                    "Device", "cpu"; "Output:Directory", runs; "Output:RunId", "e2e" ]
            let exit =
                RunCommand(settings, catalogue, NullLoggerFactory.Instance, TimeProvider.System).ExecuteAsync(Threading.CancellationToken.None)
                |> Async.AwaitTask |> Async.RunSynchronously
            Expect.equal exit ExitCodes.Ok "exit code 0"
            let run = Path.Combine(runs, "e2e")
            Expect.isFalse (Directory.Exists(run + ".partial")) "the .partial folder was renamed"
            for file in [ "config.json"; "metrics.jsonl"; "model.json"; "model.bin"; "model.pt"; "tinygrow_model.py"; "report.md"; "loss-accuracy.png"; "widths.png"; "bottleneck.png"; "accuracy-parameters.png" ] do
                Expect.isTrue (File.Exists(Path.Combine(run, file))) $"{file} written"
            Expect.stringStarts (File.ReadAllText(Path.Combine(run, "report.md"))) "# Run e2e\n" "report.md is titled with the run id (not its .partial folder)"
            let config = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "config.json"))).RootElement
            Expect.equal (config.GetProperty("Growth").GetProperty("Strategy").GetString()) "tiny" "config.json is the resolved configuration"
            let lines = File.ReadAllLines(Path.Combine(run, "metrics.jsonl")) |> Array.map (fun l -> JsonDocument.Parse(l).RootElement)
            let kinds = lines |> Array.map (fun e -> e.GetProperty("event").GetString()) |> Array.distinct |> Array.sort
            Expect.equal kinds [| "after_growth"; "epoch"; "final"; "growth"; "schema" |] "the schema line, epoch, growth, after_growth and final events"
            let final = lines[lines.Length - 1]
            let widths = [| for w in final.GetProperty("widths").EnumerateArray() -> w.GetInt32() |]
            Expect.isGreaterThan widths[0] 1 "the hidden layer grew from 1"
            // tinygrow export writes the PyTorch export again from model.json + model.bin
            File.Delete(Path.Combine(run, "model.pt"))
            use out = new StringWriter()
            use err = new StringWriter()
            Expect.equal (ExportCommand.Execute(run, out, err)) ExitCodes.Ok $"export exits 0 ({err})"
            Expect.isTrue (File.Exists(Path.Combine(run, "model.pt"))) "export wrote model.pt"
            // A folder where the export's file goes: exit 2 naming it, and no temporary left beside it.
            File.Delete(Path.Combine(run, "tinygrow_model.py"))
            Directory.CreateDirectory(Path.Combine(run, "tinygrow_model.py")) |> ignore
            use blocked = new StringWriter()
            Expect.equal (ExportCommand.Execute(run, out, blocked)) ExitCodes.BadConfiguration $"a folder in the way: exit 2 ({blocked})"
            Expect.stringContains (blocked.ToString()) "tinygrow_model.py is a folder" "names the path and what is wrong with it"
            Expect.stringContains (blocked.ToString()) "Move it away" "and the fix"
            Expect.isEmpty (Directory.GetFiles(run, ".export-probe-*")) "the write probe leaves nothing"
            Expect.isEmpty (Directory.GetFiles(run, "*.tmp")) "no temporary file left (model.pt.tmp and tinygrow_model.py.tmp were)"
            Directory.Delete(Path.Combine(run, "tinygrow_model.py"))
            // a damaged model.bin: exit 2 naming it, nothing written (it crashed the process before)
            File.Delete(Path.Combine(run, "model.pt"))
            let bytes = Array.zeroCreate<byte> (int (FileInfo(Path.Combine(run, "model.bin")).Length))
            Random(3).NextBytes bytes
            File.WriteAllBytes(Path.Combine(run, "model.bin"), bytes)
            use damaged = new StringWriter()
            Expect.equal (ExportCommand.Execute(run, out, damaged)) ExitCodes.BadConfiguration "a damaged model.bin: exit 2"
            Expect.stringContains (damaged.ToString()) "model.bin" "names the file"
            Expect.isFalse (File.Exists(Path.Combine(run, "model.pt"))) "no model.pt written"
            Expect.equal (ExportCommand.Execute(data.File "nothing", out, err)) ExitCodes.BadConfiguration "a folder without a model: exit 2"
            Expect.stringContains (err.ToString()) "model.json does not exist" "names the missing file"
        }
    
        test "the built application (its own TorchSharp natives and plugins) runs and exits 0; bad configuration exits 2" {
            use data = new TempFolder()
            let mnist = Directory.CreateDirectory(data.File "mnist").FullName
            writeMnist mnist "train" 40 3
            writeMnist mnist "t10k" 10 4
            let code, stderr =
                runApp data.Path [ "run"; "--Dataset:Name=mnist"; $"--Dataset:Root={data.Path}"; "--Training:Epochs=1"; "--Training:BatchSize=20"
                                   "--Growth:StatisticsSamples=20"; "--Growth:GammaSearchSamples=20"; "--Device=cpu"
                                   "--Output:Directory=runs"; "--Output:RunId=app" ]
            Expect.equal code ExitCodes.Ok $"exit 0 (stderr: {stderr})"
            Expect.isTrue (File.Exists(Path.Combine(data.Path, "runs", "app", "metrics.jsonl"))) "metrics written in the working directory's runs/"
            // ScottPlot's natives (SkiaSharp) load from the application's folder: the run drew its report.
            Expect.isTrue (File.Exists(Path.Combine(data.Path, "runs", "app", "widths.png"))) "the run's report figures"
            File.WriteAllText(Path.Combine(data.Path, "runs", "app", "metrics.jsonl"), "{\"event\": \"epoch\", \"epo")
            File.AppendAllText(Path.Combine(data.Path, "runs", "app", "metrics.jsonl"), "\n{}\n")
            let corrupt, why = runApp data.Path [ "report"; Path.Combine("runs", "app") ]
            Expect.equal corrupt ExitCodes.BadConfiguration $"report of a corrupt metrics.jsonl: exit 2 ({why})"
            Expect.stringContains why "metrics.jsonl line 1" "the message names the file and the line"
            let bad, message = runApp data.Path [ "run"; "--Training:Epochs=0"; "--Output:Directory=runs2" ]
            Expect.equal bad ExitCodes.BadConfiguration "exit 2"
            Expect.stringContains message "Training:Epochs" "the message names the key"
            Expect.isFalse (Directory.Exists(Path.Combine(data.Path, "runs2"))) "nothing written"
        }
    
        test "two runs started at once into one output folder, in the same second, both finish in separate folders" {
            use data = new TempFolder()
            let mnist = Directory.CreateDirectory(data.File "mnist").FullName
            writeMnist mnist "train" 40 5
            writeMnist mnist "t10k" 10 6
            let _, catalogue = discover [ shippedPlugins ]
            let runs = data.File "runs"
            let settings =
                settingsFrom [
                    "Dataset:Name", "mnist"; "Dataset:Root", data.Path
                    "Model:Layers:0:Kind", "dense"; "Model:Layers:0:Width", "2"; "Model:Layers:0:MaxWidth", "2"
                    "Growth:Strategy", "none"; "Training:Epochs", "1"; "Training:BatchSize", "20"
                    "Device", "cpu"; "Output:Directory", runs ]
            // One clock for both: the same second, so the same timestamp id.
            let clock = { new TimeProvider() with member _.GetUtcNow() = DateTimeOffset(2026, 3, 4, 5, 6, 7, TimeSpan.Zero) }
            let start () =
                Threading.Tasks.Task.Run<int>(Func<Threading.Tasks.Task<int>>(fun () ->
                    RunCommand(settings, catalogue, NullLoggerFactory.Instance, clock).ExecuteAsync(Threading.CancellationToken.None)))
            let exits = Threading.Tasks.Task.WhenAll [| start (); start () |] |> Async.AwaitTask |> Async.RunSynchronously
            Expect.equal exits [| ExitCodes.Ok; ExitCodes.Ok |] "both finished"
            Expect.equal (Directory.GetDirectories runs |> Array.map (fun d -> Path.GetFileName d |> string) |> Array.sort) [| "20260304-050607"; "20260304-050607-2" |] "two folders, no .partial left"
            for id in [ "20260304-050607"; "20260304-050607-2" ] do
                let folder = Path.Combine(runs, id)
                Expect.equal (Directory.GetFiles folder |> Array.map (fun f -> Path.GetFileName f |> string) |> Array.filter (fun f -> f.EndsWith ".tmp")) [||] "no stray temporary file"
                let config = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "config.json"))).RootElement
                Expect.equal (config.GetProperty("Output").GetProperty("RunId").GetString()) id "each config names its own id"
                let last = File.ReadAllLines(Path.Combine(folder, "metrics.jsonl")) |> Array.last
                Expect.equal (JsonDocument.Parse(last).RootElement.GetProperty("event").GetString()) "final" "each run completed in its own folder"
        }

        test "a run never writes through a link planted at its folder's path" {
            use data = new TempFolder()
            let mnist = Directory.CreateDirectory(data.File "mnist").FullName
            writeMnist mnist "train" 40 11
            writeMnist mnist "t10k" 10 12
            let _, catalogue = discover [ shippedPlugins ]
            let runs = Directory.CreateDirectory(data.File "runs").FullName
            let target = Directory.CreateDirectory(data.File "victim").FullName
            let clock = { new TimeProvider() with member _.GetUtcNow() = DateTimeOffset(2026, 3, 4, 5, 6, 7, TimeSpan.Zero) }
            Directory.CreateSymbolicLink(Path.Combine(runs, "20260304-050607.partial"), target) |> ignore
            Directory.CreateSymbolicLink(Path.Combine(runs, "chosen.partial"), target) |> ignore
            let run extra =
                let settings =
                    settingsFrom ([
                        "Dataset:Name", "mnist"; "Dataset:Root", data.Path
                        "Model:Layers:0:Kind", "dense"; "Model:Layers:0:Width", "2"; "Model:Layers:0:MaxWidth", "2"
                        "Growth:Strategy", "none"; "Training:Epochs", "1"; "Training:BatchSize", "20"
                        "Device", "cpu"; "Output:Directory", runs ] @ extra)
                RunCommand(settings, catalogue, NullLoggerFactory.Instance, clock).ExecuteAsync(Threading.CancellationToken.None)
                |> Async.AwaitTask |> Async.RunSynchronously
            Expect.equal (run [ "Output:RunId", "chosen" ]) ExitCodes.BadConfiguration "a chosen id at a link: refused"
            Expect.equal (run []) ExitCodes.Ok "a timestamp id at a link: the run goes on under the next id"
            Expect.isTrue (File.Exists(Path.Combine(runs, "20260304-050607-2", "metrics.jsonl"))) "in its own folder"
            Expect.isEmpty (Directory.GetFileSystemEntries target) "nothing written through the links"
        }

        test "a strategy plugin whose proposal breaks the contract stops the run with exit 4 (plugin fault), naming it; the .partial folder is kept" {
            use work = new TempFolder()
            let plugins = Directory.CreateDirectory(work.File "plugins").FullName
            addFixture plugins "Fixture.BadProposal" |> ignore
            let mnist = Directory.CreateDirectory(work.File "mnist").FullName
            writeMnist mnist "train" 60 1
            writeMnist mnist "t10k" 20 2
            let exit, stderr =
                runApp work.Path [ "run"; "--Output:Directory=runs"; "--Output:RunId=bad"; $"--Plugins:Folders:0={plugins}"
                                   "--Dataset:Name=mnist"; $"--Dataset:Root={work.Path}"; "--Dataset:Download=false"
                                   "--Growth:Strategy=fixture-wrong-shape"; "--Growth:StepsPerEpoch=1"; "--Growth:UntilEpoch=1"
                                   "--Growth:StatisticsSamples=30"; "--Growth:GammaSearchSamples=30"
                                   "--Training:Epochs=1"; "--Training:BatchSize=20"; "--Device=cpu" ]
            // Until the run command caught the fault itself, it fell to its catch-all and exited 1 like a bug of the run.
            Expect.equal exit ExitCodes.PluginFault $"exit 4 (stderr: {stderr})"
            for part in [ "'fixture-wrong-shape' (Fixture.BadProposal"; "invalid proposal"; "Nothing was applied" ] do
                Expect.stringContains stderr part $"the message names {part}"
            let partial = Path.Combine(work.Path, "runs", "bad.partial")
            Expect.isTrue (Directory.Exists partial) "the .partial folder is kept"
            let last = File.ReadAllLines(Path.Combine(partial, "metrics.jsonl")) |> Array.last
            Expect.stringContains last "\"event\":\"interrupted\"" "metrics.jsonl ends with the interrupted line"
        }

        test "bad input exits with a documented code and a message, never a crash" {
            use work = new TempFolder()
            let plugins = Directory.CreateDirectory(work.File "plugins").FullName
            addFixture plugins "Fixture.GoodPlugin" |> ignore
            let expectExit args code (parts: string list) =
                let exit, stderr = runApp work.Path ("run" :: "--Output:Directory=runs" :: args)
                Expect.equal exit code $"exit {code} for {args} (stderr: {stderr})"
                for part in parts do Expect.stringContains stderr part $"{args}: the message names {part}"
            expectExit [ "--Trainig:Epochs=2" ] ExitCodes.BadConfiguration [ "'Trainig:Epochs'"; "'Training:Epochs'" ]
            expectExit [ "--Logging:LogLevel:Default=Verbose" ] ExitCodes.BadConfiguration [ "Logging:LogLevel:Default = 'Verbose'" ]
            expectExit [ "--Model:Layers:5:Width=8" ] ExitCodes.BadConfiguration [ "Model:Layers:5:Width" ]
            expectExit [ "--Model:Layers:0:Width=10000000"; "--Model:Layers:0:MaxWidth=10000000" ] ExitCodes.BadConfiguration [ "Model:Layers:0:Width = 10000000" ]
            expectExit [ "--Output:RunId=x.partial" ] ExitCodes.BadConfiguration [ "Output:RunId" ]
            // A plugin that throws where it should answer: caught at the top, exit 1, said so.
            expectExit [ $"--Plugins:Folders:0={plugins}"; "--Dataset:Name=fixture-data"; "--Model:Layers:0:Kind=fixture-kind"; "--Model:Layers:1:Kind=fixture-kind"
                         "--Model:Layers:0:Activation=fixture-throw"; "--Growth:Strategy=none"; "--Device=cpu" ]
                ExitCodes.RunFailed [ "unexpected error"; "fixture: a bug in a plugin"; "No run folder was written" ]
            Expect.isFalse (Directory.Exists(work.File "runs")) "nothing written by any of them"
        }
    ]
