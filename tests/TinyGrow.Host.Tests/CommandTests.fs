/// The verbs: command-line parsing, `plugins` output, `run` up to the point where the engine starts.
module TinyGrow.Host.Tests.CommandTests

open System
open System.IO
open Expecto
open Microsoft.Extensions.Logging.Abstractions
open TinyGrow.Host
open TinyGrow.Host.Commands
open TinyGrow.Host.Tests.TestUtil

let private parse (args: string list) = CommandLine.Parse(List.toArray args)
let private errorOf args = match (parse args).Error with | null -> "" | e -> e

/// Runs `run` with the fixture plugin's names and `overrides`, writing under `output`.
let private run (plugins: string) (output: string) overrides =
    let _, catalogue = discover [ plugins ]
    let settings = settingsFrom (fixtureExperiment @ [ "Output:Directory", output ] @ overrides)
    RunCommand(settings, catalogue, NullLoggerFactory.Instance, TimeProvider.System).ExecuteAsync(Threading.CancellationToken.None)
    |> Async.AwaitTask |> Async.RunSynchronously

let tests =
    testList "commands" [
        test "command line: verb first (run by default), help anywhere, stray words and single dashes refused" {
            Expect.equal (parse []).Verb Verb.Run "run by default"
            Expect.equal (parse [ "--Training:Epochs=2" ]).Verb Verb.Run "options alone: run"
            let plugins = parse [ "plugins"; "--Plugins:Folders:0"; "x" ]
            Expect.equal plugins.Verb Verb.Plugins "plugins"
            Expect.equal (List.ofSeq plugins.ConfigurationArguments) [ "--Plugins:Folders:0"; "x" ] "options passed on with their values"
            Expect.equal (parse [ "run"; "--help" ]).Verb Verb.Help "--help"
            Expect.equal (parse [ "help" ]).Verb Verb.Help "help"
            Expect.stringContains (errorOf [ "frob" ]) "unknown verb 'frob'" "unknown verb"
            Expect.stringContains (errorOf [ "run"; "extra" ]) "unexpected argument 'extra'" "stray word"
            Expect.stringContains (errorOf [ "-x" ]) "'-x'" "single dash"
            Expect.isNull (parse [ "--experiment"; "/abs/exp.json"; "run" ]).Error "a value that looks like a path is a value"
            Expect.stringContains (errorOf [ "run"; "--Output:Directory"; "--Training:Epochs=2" ]) "the next word, '--Training:Epochs=2', is an option"
                                  "a key whose value is missing does not take the next option as its value"
            Expect.stringContains (errorOf [ "run"; "--Output:Directory" ]) "--Output:Directory needs a value" "nor at the end"
            Expect.equal (List.ofSeq (parse [ "--Output:RunId=--odd"; "--Training:Seed"; "-3" ]).ConfigurationArguments)
                         [ "--Output:RunId=--odd"; "--Training:Seed"; "-3" ] "a value after '=' is taken as given; one dash is a value"
            let export = parse [ "export"; "runs/x" ]
            Expect.equal (export.Verb, export.Argument) (Verb.Export, "runs/x") "export <run-folder>"
            Expect.stringContains (errorOf [ "export" ]) "export needs the run folder" "export without a folder"
            Expect.stringContains (errorOf [ "export"; "runs/x"; "--Device=cpu" ]) "export takes only a run folder" "export with configuration"
        }

        test "command line: resume takes the run folder, reads its config.json, keeps overrides, refuses --experiment" {
            let resume = parse [ "resume"; "runs/x.partial"; "--Checkpoint:EverySeconds=5" ]
            Expect.equal resume.Verb Verb.Resume "resume"
            Expect.equal resume.Argument "runs/x.partial" "the folder"
            Expect.equal (List.ofSeq resume.ConfigurationArguments)
                [ "--Experiment"; IO.Path.Combine("runs/x.partial", "config.json"); "--Checkpoint:EverySeconds=5" ] "config.json is the experiment, overrides on top"
            Expect.stringContains (errorOf [ "resume" ]) "needs the run folder" "no folder"
            Expect.stringContains (errorOf [ "resume"; "a"; "b" ]) "unexpected argument 'b'" "one folder"
            Expect.stringContains (errorOf [ "resume"; "a"; "--experiment"; "e.json" ]) "drop --experiment" "its own configuration only"
        }

        test "resume: a missing folder or one without config.json is named as such, not as a missing --experiment file" {
            use tmp = new TempFolder()
            let missing = tmp.File "nope.partial"
            Expect.stringContains (RunCommand.ResumeProblem missing |> string) $"{missing} does not exist" "a missing folder"
            let empty = IO.Directory.CreateDirectory(tmp.File "empty.partial").FullName
            Expect.stringContains (RunCommand.ResumeProblem empty |> string) "is not a run folder (it has no config.json)" "an empty folder"
            IO.File.WriteAllText(IO.Path.Combine(empty, "config.json"), "{}")
            Expect.isNull (RunCommand.ResumeProblem empty) "a folder with config.json is tried"
            let other = IO.Directory.CreateDirectory(tmp.File "photos").FullName
            Expect.stringContains (RunCommand.ResumeProblem other |> string) "is not a run folder (it has no config.json)" "a folder that is no run at all is not called finished"
            let finished = IO.Directory.CreateDirectory(tmp.File "20261207-101010").FullName
            IO.File.WriteAllText(IO.Path.Combine(finished, "config.json"), "{}")
            Expect.stringContains (RunCommand.ResumeProblem finished |> string) "this one has finished" "a finished run is"
        }

        test "resume: a file given as the folder, and a run.lock or metrics.jsonl that is a link, a FIFO or a folder, are refused by name before anything is opened" {
            use tmp = new TempFolder()
            let run = IO.Directory.CreateDirectory(tmp.File "r.partial").FullName
            IO.File.WriteAllText(IO.Path.Combine(run, "config.json"), "{}")
            let config = IO.Path.Combine(run, "config.json")
            Expect.stringContains (RunCommand.ResumeProblem config |> string) "is a file, not a run folder" "a file, not said to be missing"
            let outside = tmp.File "elsewhere.txt"
            IO.File.WriteAllText(outside, "not the run's")
            for name in [ "run.lock"; "metrics.jsonl" ] do
                let file = IO.Path.Combine(run, name)
                IO.File.CreateSymbolicLink(file, outside) |> ignore
                Expect.stringContains (RunCommand.ResumeProblem run |> string) $"{file} is a symbolic link" $"{name}: a link"
                IO.File.Delete file
                use fifo = Diagnostics.Process.Start("mkfifo", [ file ])
                fifo.WaitForExit()
                Expect.stringContains (RunCommand.ResumeProblem run |> string) $"{file} is a FIFO" $"{name}: a FIFO"
                IO.File.Delete file
                IO.Directory.CreateDirectory file |> ignore
                Expect.stringContains (RunCommand.ResumeProblem run |> string) $"{file} is a folder" $"{name}: a folder"
                IO.Directory.Delete file
            Expect.equal (IO.File.ReadAllText outside) "not the run's" "nothing written through the link"
            IO.File.WriteAllText(IO.Path.Combine(run, "metrics.jsonl"), "")
            Expect.isNull (RunCommand.ResumeProblem run) "regular files are tried"
        }

        test "plugins: a service whose constructor or name getter throws, or whose name is blank, is listed under Refused, named with its plugin and the reason" {
            use tmp = new TempFolder()
            addFixture tmp.Path "Fixture.GoodPlugin" |> ignore
            let throwing = addFixture tmp.Path "Fixture.ThrowingService"
            let result, catalogue = discover [ tmp.Path ]
            use output = new StringWriter()
            Expect.equal (PluginsCommand(catalogue, result).Execute output) ExitCodes.Ok "exit code"
            let text = output.ToString()
            let refused = Expect.wantSome (text.Split('\n') |> Array.tryFind (fun l -> contains l "Refused:" && contains l throwing)) $"a Refused line for {throwing} ({text})"
            for part in [ "IGrowthStrategy"; "Fixture.ThrowingService.ThrowingStrategy"; "InvalidOperationException"; "this strategy cannot be built" ] do
                Expect.stringContains refused part part
            Expect.isFalse (contains text " never") "its strategy is not served"
            Expect.stringContains text "fixture-strategy" "the good plugin still is"
            // Names are plugin code too: a Names getter that throws and a blank name are refused, not a crash.
            let refusedLines = text.Split('\n') |> Array.filter (fun l -> contains l "Refused:" && contains l throwing)
            Expect.isTrue (refusedLines |> Array.exists (fun l -> contains l "NamesThrowProvider" && contains l "could not give its name" && contains l "these names cannot be read"))
                $"the provider whose Names throws is refused, with the exception ({text})"
            Expect.isTrue (refusedLines |> Array.exists (fun l -> contains l "BlankNameKind" && contains l "a blank name"))
                $"the layer kind with a blank name is refused ({text})"
        }

        test "plugins: the table names the good plugin, its kinds, names and version" {
            use tmp = new TempFolder()
            addFixture tmp.Path "Fixture.GoodPlugin" |> ignore
            addFixture tmp.Path "Fixture.OtherContract" |> ignore
            let result, catalogue = discover [ tmp.Path ]
            use output = new StringWriter()
            Expect.equal (PluginsCommand(catalogue, result).Execute output) ExitCodes.Ok "exit code"
            let lines = output.ToString().Split('\n') |> Array.map (fun l -> l.TrimEnd())
            Expect.stringStarts lines[0] "PLUGIN" "header"
            let row = Expect.wantSome (lines |> Array.tryFind (fun l -> contains l "fixture-strategy")) "a row for the strategy"
            for part in [ "Fixture.GoodPlugin"; "growth strategy"; "1.2.3" ] do Expect.stringContains row part part
            Expect.isTrue (lines |> Array.exists (fun l -> contains l "layer kind" && contains l "fixture-kind")) "layer kind row"
            Expect.isTrue (lines |> Array.exists (fun l -> contains l "dataset" && contains l "fixture-data")) "dataset row"
            Expect.equal (lines[0].IndexOf "NAME") (row.IndexOf "fixture-strategy") "columns aligned"
            Expect.isTrue (lines |> Array.exists (fun l -> l.StartsWith "Refused:" && contains l "Fixture.OtherContract")) "refusals listed"
        }

        test "run: invalid configuration exits 2 and writes nothing" {
            use plugins = new TempFolder()
            use output = new TempFolder()
            addFixture plugins.Path "Fixture.GoodPlugin" |> ignore
            let runs = output.File "runs"
            Expect.equal (run plugins.Path runs [ "Training:Epochs", "0" ]) ExitCodes.BadConfiguration "bad value"
            Expect.equal (run plugins.Path runs [ "Growth:Strategy", "nope" ]) ExitCodes.BadConfiguration "unknown strategy"
            Expect.isFalse (Directory.Exists runs) "nothing written"
        }

        test "run: a dataset error exits 3 and writes nothing; an existing run folder exits 2" {
            use plugins = new TempFolder()
            use output = new TempFolder()
            addFixture plugins.Path "Fixture.GoodPlugin" |> ignore
            let runs = output.File "runs"
            Expect.equal (run plugins.Path runs []) ExitCodes.DatasetError "fixture-data is never there"
            Expect.isFalse (Directory.Exists runs) "nothing written for a missing dataset"
            Directory.CreateDirectory(Path.Combine(runs, "taken.partial")) |> ignore
            Expect.equal (run plugins.Path runs [ "Output:RunId", "taken" ]) ExitCodes.BadConfiguration "run id in use"
        }
    
        test "an exception that escapes a verb is reported with the run folder and mapped to a documented exit code" {
            let report (e: exn) folder =
                use error = new StringWriter()
                let code = Failure.Report(e, folder, error)
                code, error.ToString()
            let thrownBug = thrown (fun () -> raise (InvalidOperationException "boom"))
            let code, text = report thrownBug (Some "/runs/x.partial" |> Option.toObj)
            Expect.equal code ExitCodes.RunFailed "a bug: 1"
            Expect.stringContains text "unexpected error (System.InvalidOperationException): boom" "says it was not foreseen"
            Expect.stringContains text "kept in /runs/x.partial" "names the run folder"
            Expect.stringContains text "\n   at " "with the stack trace a bug report needs"
            let code, text = report (TinyGrow.Abstractions.DatasetException "f: corrupt") null
            Expect.equal code ExitCodes.DatasetError "dataset: 3"
            Expect.stringContains text "No run folder was written" "nothing claimed"
            Expect.equal (Failure.ExitCode(OperationCanceledException())) ExitCodes.Cancelled "interrupted: 130"
            Expect.equal (Failure.ExitCode(TinyGrow.Core.ProposalCheck.PluginFaultException "p")) ExitCodes.PluginFault "a plugin fault: 4"
            Expect.equal (Failure.ExitCode(TinyGrow.Host.Configuration.InvalidConfigurationException "k")) ExitCodes.BadConfiguration "configuration: 2"
            Expect.equal (Failure.ExitCode(RunFolderException "taken")) ExitCodes.BadConfiguration "run folder: 2"
        }
    ]
