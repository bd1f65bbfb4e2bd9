/// Files and settings that are not what they seem (issue 21 §3): an experiment file that is a device,
/// a FIFO, too large, unreadable or starts with a byte order mark; JSON null for a typed option;
/// --experiment twice; a conv-only key on a dense layer; TINYGROW__ (two underscores); more threads
/// than cores; a refusal with logging turned off. Each test failed on the code before.
module TinyGrow.Host.Tests.SettingsFileTests

open System
open System.IO
open Expecto
open Microsoft.Extensions.Configuration
open TinyGrow.Host
open TinyGrow.Host.Commands
open TinyGrow.Host.Configuration
open TinyGrow.Host.Tests.TestUtil

let private app = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", "..", "artifacts", "tinygrow", "tinygrow.dll"))

/// Runs the built application in `dir` with `env` added (TINYGROW_* of this process removed), as
/// `user` when given (runuser: root reads every file, so a permission test runs as nobody); a
/// process still running after `seconds` is killed and reported as exit -1. Returns (exit, stderr).
let private runAs (user: string option) (dir: string) (env: (string * string) list) (seconds: int) (args: string list) =
    let info =
        match user with
        | Some u ->
            let i = Diagnostics.ProcessStartInfo("runuser", WorkingDirectory = dir, RedirectStandardError = true, RedirectStandardOutput = true)
            for a in [ "-u"; u; "--"; "dotnet" ] do i.ArgumentList.Add a
            // A home the other user may write (the .NET host keeps its files there), inside `dir` (deleted with it).
            let home = Directory.CreateDirectory(Path.Combine(dir, "home")).FullName
            File.SetUnixFileMode(home, enum<UnixFileMode> 0o777)
            i.Environment["HOME"] <- home
            i.Environment["DOTNET_CLI_HOME"] <- home
            i
        | None -> Diagnostics.ProcessStartInfo("dotnet", WorkingDirectory = dir, RedirectStandardError = true, RedirectStandardOutput = true)
    info.ArgumentList.Add app
    for name in info.Environment.Keys |> Seq.filter (fun k -> k.StartsWith("TINYGROW", StringComparison.OrdinalIgnoreCase)) |> Seq.toList do
        info.Environment.Remove name |> ignore
    for k, v in env do info.Environment[k] <- v
    for a in args do info.ArgumentList.Add a
    use p =
        match Diagnostics.Process.Start info with
        | null -> failwith "could not start dotnet"
        | p -> p
    let stdout = p.StandardOutput.ReadToEndAsync()
    let stderr = p.StandardError.ReadToEndAsync()
    if p.WaitForExit(seconds * 1000) then
        p.WaitForExit()
        stdout.Wait()
        p.ExitCode, stderr.Result
    else
        p.Kill true
        p.WaitForExit()
        -1, "(killed: still running after " + string seconds + " s)"

let private run dir args = runAs None dir [] 60 args

let private build (dir: string) (args: string list) =
    ConfigurationBuilder().AddTinyGrowLayers(dir, List.toArray args, dir).Build()

let private mkfifo (path: string) =
    use p = Diagnostics.Process.Start("mkfifo", [ path ])
    p.WaitForExit()
    Expect.equal p.ExitCode 0 "mkfifo"

let tests =
    testList "settings files (issue 21 §3)" [
        test "run and submit refuse an experiment file that is a device, a FIFO or larger than 1 MiB (exit 2, naming it); nothing queued" {
            use tmp = new TempFolder()
            mkfifo (tmp.File "fifo.json")
            // 1 MiB + 1 byte of valid JSON (spaces around an empty object).
            File.WriteAllText(tmp.File "big.json", "{" + String(' ', ConfigurationLayers.MaxFileBytes) + "}")
            for file, what in [ "/dev/zero", "is a character device, not a regular file"
                                tmp.File "fifo.json", "is a FIFO (named pipe), not a regular file"
                                tmp.File "big.json", "at most 1,048,576 (1 MiB)" ] do
                let code, stderr = runAs None tmp.Path [] 30 [ "run"; "--experiment"; file; "--Device=cpu" ]
                Expect.equal code ExitCodes.BadConfiguration $"run {file}: exit 2 ({stderr})"
                Expect.stringContains stderr file $"run {file}: names the file"
                Expect.stringContains stderr what $"run {file}: says what is wrong"
                let code, stderr = runAs None tmp.Path [] 30 [ "submit"; file; "--Daemon:QueueFolder=queue" ]
                Expect.equal code ExitCodes.BadConfiguration $"submit {file}: exit 2 ({stderr})"
                Expect.stringContains stderr what $"submit {file}: says what is wrong"
                Expect.stringContains stderr "Nothing queued" $"submit {file}: nothing queued"
                let queued = Path.Combine(tmp.Path, "queue", "queued")
                Expect.isTrue (not (Directory.Exists queued) || Directory.GetFiles queued = [||]) $"submit {file}: no job"
        }

        test "an experiment file that cannot be read is named as such, not 'Fix the JSON'" {
            use tmp = new TempFolder()
            File.WriteAllText(tmp.File "secret.json", "{}")
            File.SetUnixFileMode(tmp.File "secret.json", UnixFileMode.None)
            File.SetUnixFileMode(tmp.Path, UnixFileMode.UserRead ||| UnixFileMode.UserWrite ||| UnixFileMode.UserExecute ||| UnixFileMode.OtherExecute ||| UnixFileMode.GroupExecute)
            let user = if Environment.IsPrivilegedProcess then Some "nobody" else None
            // As root the file is read as nobody, who must then be able to run the built app: not so when the
            // checkout sits in a private folder (mktemp -d), where this case cannot be shown.
            if user.IsSome then
                let check = Diagnostics.ProcessStartInfo("runuser", RedirectStandardError = true)
                for a in [ "-u"; "nobody"; "--"; "test"; "-r"; app ] do check.ArgumentList.Add a
                use p = match Diagnostics.Process.Start check with null -> failwith "could not start runuser" | p -> p
                p.WaitForExit()
                if p.ExitCode <> 0 then skiptest $"the built app {app} is not readable by nobody (the checkout is in a private folder): a file unreadable to the test's own user cannot be made as root"
            let secret = tmp.File "secret.json"
            let code, stderr = runAs user tmp.Path [] 60 [ "run"; "--experiment"; secret; "--Device=cpu" ]
            Expect.equal code ExitCodes.BadConfiguration $"exit 2 ({stderr})"
            Expect.stringContains stderr $"The experiment file {secret} cannot be read" "names the file, says it cannot be read"
            Expect.stringContains stderr "denied" "the reason"
            Expect.isFalse (contains stderr "Fix the JSON") "no advice about JSON"
        }

        test "a UTF-8 byte order mark at the start of an experiment file is accepted" {
            use tmp = new TempFolder()
            File.WriteAllBytes(tmp.File "bom.json", Array.append [| 0xEFuy; 0xBBuy; 0xBFuy |] (Text.Encoding.UTF8.GetBytes """{ "Training": { "Epochs": 3 } }"""))
            let settings = build tmp.Path [ "--experiment"; "bom.json" ] |> TinyGrowSettings.Bind
            Expect.equal settings.Training.Epochs 3 "read through the mark"
        }

        test "JSON null (or an empty value) for a typed option is refused naming the key; null for a text option is accepted" {
            use tmp = new TempFolder()
            File.WriteAllText(tmp.File "null.json", """{ "Training": { "Epochs": null }, "Model": { "Layers": [ { "Width": 2, "Bias": null } ] } }""")
            let e = thrown (fun () -> build tmp.Path [ "--experiment"; "null.json" ] |> TinyGrowSettings.Bind |> ignore)
            Expect.isTrue (e :? InvalidConfigurationException) "a configuration error (exit 2)"
            Expect.stringContains e.Message "Training:Epochs = null: null is not a value here; use a whole number" "names the key and says null"
            Expect.stringContains e.Message "Model:Layers:0:Bias = null" "inside a list too"
            Expect.stringContains e.Message (tmp.File "null.json") "names the file"
            let e = thrown (fun () -> build tmp.Path [ "--Training:LearningRate=" ] |> TinyGrowSettings.Bind |> ignore)
            Expect.stringContains e.Message "Training:LearningRate is empty" "an empty value on the command line"
            File.WriteAllText(tmp.File "text.json", """{ "Dataset": { "Mirror": null }, "Output": { "RunId": null } }""")
            let settings = build tmp.Path [ "--experiment"; "text.json" ] |> TinyGrowSettings.Bind
            Expect.equal settings.Output.RunId "" "a text option's null is empty, as config.json records it"
        }

        test "--experiment given twice is refused" {
            let error args = match CommandLine.Parse(List.toArray args).Error with | null -> "" | e -> e
            Expect.stringContains (error [ "run"; "--experiment"; "a.json"; "--experiment"; "b.json" ]) "--experiment is given more than once" "two of the same form"
            Expect.stringContains (error [ "--Experiment=a.json"; "submit"; "x.json"; "--experiment"; "b.json" ]) "more than once" "either form, any case"
            Expect.equal (error [ "run"; "--experiment"; "a.json"; "--Training:Epochs=2" ]) "" "once is fine"
        }

        test "a conv-only key set on a dense layer is refused naming the key and where it was set; defaults (config.json) and conv layers pass" {
            use tmp = new TempFolder()
            File.WriteAllText(tmp.File "pool.json", """{ "Model": { "Layers": [ { "Kind": "dense", "Width": 2, "Pool": "max2" }, { "Width": 2, "BatchNorm": false } ] } }""")
            let e = thrown (fun () -> build tmp.Path [ "--experiment"; "pool.json" ] |> TinyGrowSettings.Bind |> ignore)
            Expect.isTrue (e :? InvalidConfigurationException) "a configuration error (exit 2)"
            Expect.stringContains e.Message "Model:Layers:0:Pool = 'max2': Pool applies to conv layers only" "names the key and value"
            let pool = tmp.File "pool.json"
            Expect.stringContains e.Message $"(set in {pool})" "and the file"
            Expect.stringContains e.Message "Model:Layers:1:BatchNorm = false" "a layer of the default kind is dense"
            File.WriteAllText(tmp.File "dense.json", """{ "Model": { "Layers": [ { "Kind": "dense", "Width": 2 } ] } }""")
            let e = thrown (fun () -> build tmp.Path [ "--experiment"; "dense.json"; "--Model:Layers:0:Kernel=5" ] |> TinyGrowSettings.Bind |> ignore)
            Expect.stringContains e.Message "Model:Layers:0:Kernel = 5" "from the command line"
            Expect.stringContains e.Message "--Model:Layers:0:Kernel" "names the option"
            // What config.json writes for a dense layer: every key at its default.
            File.WriteAllText(tmp.File "config.json", """{ "Model": { "Layers": [ { "Kind": "dense", "Width": 2, "MaxWidth": 8, "Activation": "tanh", "Bias": true,
                                                                               "Kernel": 3, "Stride": 1, "Padding": -1, "Dilation": 1, "BatchNorm": true, "Pool": "none" },
                                                                             { "Kind": "conv", "Width": 2, "Kernel": 5, "Pool": "max2", "BatchNorm": false } ] } }""")
            let settings = build tmp.Path [ "--experiment"; "config.json" ] |> TinyGrowSettings.Bind
            Expect.equal settings.Model.Layers[1].Pool "max2" "a conv layer's own keys"
        }

        test "TINYGROW__Section__Key (two underscores after the prefix) is refused as a probable mistake (exit 2)" {
            use tmp = new TempFolder()
            // No dataset there: the code before ran on to exit 3 (or trained, with a dataset).
            let code, stderr = runAs None tmp.Path [ "TINYGROW__Training__BatchSize", "0" ] 60
                                     [ "run"; "--Dataset:Name=mnist"; $"--Dataset:Root={tmp.Path}"; "--Dataset:Download=false"; "--Device=cpu" ]
            Expect.equal code ExitCodes.BadConfiguration $"exit 2 ({stderr})"
            Expect.stringContains stderr "TINYGROW__Training__BatchSize is not read" "names the variable"
            Expect.stringContains stderr "Rename it TINYGROW_Training__BatchSize" "and the fix"
            Expect.isFalse (Directory.Exists(tmp.File "runs")) "nothing written"
            Expect.isEmpty (ConfigurationLayers.MisspeltEnvironment [ "TINYGROW_Training__Epochs"; "TINYGROWD_PID"; "PATH" ]) "the right prefix and others pass"
        }

        test "Training:Threads above the machine's cores gives a warning" {
            use tmp = new TempFolder()
            let threads = Environment.ProcessorCount + 1
            // No dataset under the root and no download: exit 3 after the settings are checked, before any training.
            let code, stderr = run tmp.Path [ "run"; "--Dataset:Name=mnist"; $"--Dataset:Root={tmp.Path}"; "--Dataset:Download=false"; "--Device=cpu"
                                              $"--Training:Threads={threads}"; "--Output:Progress=plain" ]
            Expect.equal code ExitCodes.DatasetError $"exit 3: no dataset ({stderr})"
            Expect.stringContains stderr $"Training:Threads = {threads} is more than this machine's {Environment.ProcessorCount} cores" "warned"
            let _, quiet = run tmp.Path [ "run"; "--Dataset:Name=mnist"; $"--Dataset:Root={tmp.Path}"; "--Dataset:Download=false"; "--Device=cpu"
                                          $"--Training:Threads={Environment.ProcessorCount}"; "--Output:Progress=plain" ]
            Expect.isFalse (contains quiet "Training:Threads") "no warning at the core count"
        }

        test "a refusal is printed to stderr even with Logging:LogLevel:Default=None" {
            use tmp = new TempFolder()
            let code, stderr = run tmp.Path [ "run"; "--Training:Epochs=0"; "--Logging:LogLevel:Default=None"; "--Device=cpu" ]
            Expect.equal code ExitCodes.BadConfiguration "exit 2"
            Expect.stringContains stderr "Training:Epochs = 0" "the reason is printed"
            let code, stderr = run tmp.Path [ "run"; "--Dataset:Name=mnist"; $"--Dataset:Root={tmp.Path}"; "--Dataset:Download=false"; "--Device=cpu"
                                              "--Logging:LogLevel:Default=None" ]
            Expect.equal code ExitCodes.DatasetError "exit 3"
            Expect.stringContains stderr "Dataset 'mnist'" "a dataset error too"
        }
    ]
