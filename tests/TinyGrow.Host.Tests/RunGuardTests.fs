/// Runs that cannot mean anything stop with a clear error; a run that stops early says so in its
/// metrics.jsonl (issue 8).
module TinyGrow.Host.Tests.RunGuardTests

open System
open System.IO
open System.Text.Json
open Expecto
open Microsoft.Extensions.Logging
open Microsoft.Extensions.Logging.Abstractions
open TinyGrow.Core
open TinyGrow.Host.Tests.TestUtil

/// A logger that hands every formatted message to `onMessage`.
type Listening(onMessage: LogLevel -> string -> unit) =
    interface ILogger with
        member _.BeginScope<'TState when 'TState: not null>(_state: 'TState) : IDisposable | null = null
        member _.IsEnabled _ = true
        member _.Log<'TState>(level: LogLevel, _id: EventId, state: 'TState, error: exn | null, formatter: Func<'TState, exn | null, string>) =
            onMessage level (formatter.Invoke(state, error))

let listening onMessage =
    { new ILoggerFactory with
        member _.CreateLogger _ = Listening onMessage
        member _.AddProvider _ = ()
        member _.Dispose() = () }

/// `run` on generated MNIST files (`train` and `test` samples) in a fresh folder with the shipped plugins and `settings`
/// (Dataset and Output set here); `loggers` of a message-collecting `listening`. Returns the exit code and the runs folder.
let private runOnMnist (data: TempFolder) (train: int) (test: int) (settings: (string * string) list) loggers (token: Threading.CancellationToken) =
    let mnist = Directory.CreateDirectory(data.File "mnist").FullName
    EndToEndTests.writeMnist mnist "train" train 9
    EndToEndTests.writeMnist mnist "t10k" test 10
    let _, catalogue = discover [ EndToEndTests.shippedPlugins ]
    let runs = data.File "runs"
    let settings = settingsFrom ([ "Dataset:Name", "mnist"; "Dataset:Root", data.Path; "Device", "cpu"; "Output:Directory", runs ] @ settings)
    let exit =
        TinyGrow.Host.Commands.RunCommand(settings, catalogue, loggers, TimeProvider.System).ExecuteAsync(token)
        |> Async.AwaitTask |> Async.RunSynchronously
    exit, runs

let tests =
    testList "run guards" [
        test "a non-finite training loss stops the run at once, naming epoch, batch and the learning rate" {
            let progress = RunProgress NullLogger.Instance
            Expect.equal (RunGuards.trained progress 2 4 10 0.5 1.25) 1.25 "a finite loss passes through"
            for loss in [ nan; infinity; -infinity ] do
                let e = thrown (fun () -> RunGuards.trained progress 2 5 10 0.5 loss |> ignore)
                Expect.isTrue (e :? NonFiniteLossException) $"{loss}: stopped"
                Expect.stringContains e.Message "epoch 2, batch 5" "where"
                Expect.stringContains e.Message "Training:LearningRate" "the fix"
            Expect.equal (progress.Epoch, progress.Batch) (2, 4) "the last batch that trained"
        }

        test "an epoch whose mean training loss stays above the first batch's is a warning" {
            let warnings = Collections.Generic.List<string>()
            let progress = RunProgress((listening (fun level m -> if level = LogLevel.Warning then warnings.Add m)).CreateLogger "x")
            for b, loss in [ 1, 2.0; 2, 1.0; 3, 0.5 ] do RunGuards.trained progress 1 b 3 0.05 loss |> ignore
            Expect.isEmpty warnings "a falling loss: no warning"
            for b, loss in [ 1, 2.5; 2, 3.0; 3, 2.2 ] do RunGuards.trained progress 2 b 3 100.0 loss |> ignore
            Expect.equal warnings.Count 1 "one warning for epoch 2"
            Expect.stringContains warnings[0] "epoch 2" "names the epoch"
            Expect.stringContains warnings[0] "Training:LearningRate may be too high" "and the likely cause"
        }

        test "an interrupted run ends its metrics.jsonl with an interrupted line (reason, epoch, batch) and exits 130" {
            use data = new TempFolder()
            // Ctrl-C, as the host's lifetime would signal it, right after the first epoch's log line.
            use stop = new Threading.CancellationTokenSource()
            let loggers = listening (fun _ m -> if m.StartsWith "epoch 1/" then stop.Cancel())
            let exit, runs =
                runOnMnist data 40 10
                    [ "Model:Layers:0:Kind", "dense"; "Model:Layers:0:Width", "2"; "Model:Layers:0:MaxWidth", "2"
                      "Growth:Strategy", "none"; "Training:Epochs", "50"; "Training:BatchSize", "20"; "Output:RunId", "stopped" ]
                    loggers stop.Token
            Expect.equal exit TinyGrow.Host.ExitCodes.Cancelled "exit 130"
            let lines = File.ReadAllLines(Path.Combine(runs, "stopped.partial", "metrics.jsonl"))
            let last = JsonDocument.Parse(lines[lines.Length - 1]).RootElement
            Expect.equal (last.GetProperty("event").GetString()) "interrupted" "the last line says so"
            Expect.stringContains (last.GetProperty("reason").GetString() |> string) "interrupted" "why"
            Expect.equal (last.GetProperty("epoch").GetInt32(), last.GetProperty("batch").GetInt32()) (1, 2) "after epoch 1's two batches"
            Expect.isTrue (File.Exists(Path.Combine(runs, "stopped.partial", "checkpoint.bin"))) "Ctrl-C writes a checkpoint too"
        }

        test "an empty split is a dataset error (exit 3) and nothing is written" {
            for train, test in [ 40, 0; 0, 10 ] do
                use data = new TempFolder()
                let messages = Collections.Generic.List<string>()
                let exit, runs =
                    runOnMnist data train test [ "Model:Layers:0:Kind", "dense"; "Growth:Strategy", "none" ]
                               (listening (fun _ m -> messages.Add m)) Threading.CancellationToken.None
                Expect.equal exit TinyGrow.Host.ExitCodes.DatasetError $"{train}/{test} samples: exit 3"
                Expect.exists messages (fun m -> m.Contains "split has no samples") "the message says which split is empty"
                let file = if train = 0 then "train-images-idx3-ubyte" else "t10k-images-idx3-ubyte"
                Expect.exists messages (fun m -> m.Contains file) $"and names its files ({file})"
                Expect.isFalse (Directory.Exists runs) "nothing written"
        }
        test "growth on one training sample: exit 2 when Dataset:TrainSamples cut it so, naming the key; nothing written" {
            use data = new TempFolder()
            let messages = Collections.Generic.List<string>()
            let exit, runs =
                runOnMnist data 40 10 [ "Dataset:TrainSamples", "1"; "Model:Layers:0:Kind", "dense" ]
                           (listening (fun _ m -> messages.Add m)) Threading.CancellationToken.None
            Expect.equal exit TinyGrow.Host.ExitCodes.BadConfiguration "a configuration's doing: exit 2"
            Expect.exists messages (fun m -> m.Contains "Dataset:TrainSamples=1") "names the key"
            Expect.isFalse (Directory.Exists runs) "nothing written"
        }
    ]
