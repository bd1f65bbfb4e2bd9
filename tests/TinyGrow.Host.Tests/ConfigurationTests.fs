/// Configuration layers (appsettings < experiment < environment < command line), binding, validation.
module TinyGrow.Host.Tests.ConfigurationTests

open System
open System.IO
open Expecto
open FsCheck
open Microsoft.Extensions.Configuration
open TinyGrow.Host.Configuration
open TinyGrow.Host.Tests.TestUtil

let private appsettings =
    """{ "Growth": { "Strategy": "from-appsettings", "StepsPerEpoch": 2 },
         "Training": { "Epochs": 3, "BatchSize": 32 },
         "Model": { "Layers": [ { "Width": 1 }, { "Width": 2 } ] },
         "Device": "cpu" }"""

let private experiment =
    """{ "Growth": { "Strategy": "from-experiment" },
         "Training": { "BatchSize": 64 },
         "Model": { "Layers": [ { "Width": 5 } ] } }"""

/// Configuration built the way the host builds it, from files in `dir`.
let private build (dir: string) (args: string list) =
    ConfigurationBuilder().AddTinyGrowLayers(dir, List.toArray args, dir).Build()

let private errorsOf pairs = SettingsValidator.Validate(settingsFrom pairs) |> String.concat "\n"

// Sequenced: one test sets TINYGROW_* environment variables, which every other test here would read.
let tests =
    testSequenced <| testList "configuration" [
        test "appsettings < experiment file < command line; an experiment's array replaces the whole array" {
            use tmp = new TempFolder()
            File.WriteAllText(tmp.File "appsettings.json", appsettings)
            File.WriteAllText(tmp.File "exp.json", experiment)
            let settings = build tmp.Path [ "--experiment"; "exp.json"; "--Growth:Strategy=x" ] |> TinyGrowSettings.Bind
            Expect.equal settings.Growth.Strategy "x" "command line over experiment"
            Expect.equal settings.Training.BatchSize 64 "experiment over appsettings"
            Expect.equal settings.Training.Epochs 3 "appsettings where nothing overrides"
            Expect.equal settings.Growth.StepsPerEpoch 2 "appsettings, same section as an override"
            Expect.equal settings.Growth.UntilEpoch (TinyGrow.Abstractions.GrowthOptions().UntilEpoch) "class default where no layer sets it"
            Expect.equal (settings.Model.Layers |> Seq.map (fun l -> l.Width) |> List.ofSeq) [ 5 ] "the experiment's one layer, not 5 then 2"
            let without = build tmp.Path [ "--Experiment=exp.json"; "--Model:Layers:1:Width"; "9" ] |> TinyGrowSettings.Bind
            Expect.equal without.Growth.Strategy "from-experiment" "--Experiment=<path> form"
            Expect.equal (without.Model.Layers |> Seq.map (fun l -> l.Width) |> List.ofSeq) [ 5; 9 ] "the command line adds an element"
        }

        test "environment variables sit between the experiment file and the command line" {
            use tmp = new TempFolder()
            File.WriteAllText(tmp.File "appsettings.json", appsettings)
            File.WriteAllText(tmp.File "exp.json", experiment)
            Environment.SetEnvironmentVariable("TINYGROW_Training__BatchSize", "96")
            Environment.SetEnvironmentVariable("TINYGROW_Growth__Strategy", "from-env")
            try
                let settings = build tmp.Path [ "--experiment"; "exp.json"; "--Growth:Strategy=x" ] |> TinyGrowSettings.Bind
                Expect.equal settings.Training.BatchSize 96 "environment over experiment"
                Expect.equal settings.Growth.Strategy "x" "command line over environment"
            finally
                Environment.SetEnvironmentVariable("TINYGROW_Training__BatchSize", null)
                Environment.SetEnvironmentVariable("TINYGROW_Growth__Strategy", null)
        }

        test "a missing experiment file is an error naming its full path" {
            use tmp = new TempFolder()
            let e = thrown (fun () -> build tmp.Path [ "--experiment"; "missing.json" ] |> ignore)
            Expect.isTrue (e :? InvalidConfigurationException) "configuration error"
            Expect.stringContains e.Message (tmp.File "missing.json") "names the path"
        }

        test "an experiment file that is not JSON is an error naming it" {
            use tmp = new TempFolder()
            File.WriteAllText(tmp.File "bad.json", "{ \"Training\": ")
            let e = thrown (fun () -> build tmp.Path [ "--experiment"; "bad.json" ] |> ignore)
            Expect.isTrue (e :? InvalidConfigurationException) "configuration error"
            Expect.stringContains e.Message (tmp.File "bad.json") "names the path"
        }

        test "an unknown key or a value of the wrong type is an error naming the key" {
            let typo = thrown (fun () -> settingsFrom [ "Training:Epoch", "3" ] |> ignore)
            Expect.isTrue (typo :? InvalidConfigurationException) "configuration error"
            Expect.stringContains typo.Message "'Epoch'" "names the unknown key"
            let nested = thrown (fun () -> settingsFrom [ "Model:Layers:0:Widht", "3" ] |> ignore)
            Expect.stringContains nested.Message "'Widht'" "names the unknown key of a layer"
            let wrongType = thrown (fun () -> settingsFrom [ "Training:Epochs", "many" ] |> ignore)
            Expect.stringContains wrongType.Message "Training:Epochs" "names the key"
        }

        test "invalid values: one error per key, naming it" {
            Expect.isEmpty (SettingsValidator.Validate(settingsFrom fixtureExperiment)) "a valid experiment passes"
            let epochs = errorsOf (fixtureExperiment @ [ "Training:Epochs", "0" ])
            Expect.stringContains epochs "Training:Epochs = 0" "DataAnnotations range, with the key"
            let width = errorsOf (fixtureExperiment @ [ "Model:Layers:0:Width", "0" ])
            Expect.stringContains width "Model:Layers:0:Width = 0" "layer width"
            let maxWidth = errorsOf (fixtureExperiment @ [ "Model:Layers:0:Width", "8"; "Model:Layers:0:MaxWidth", "4" ])
            Expect.stringContains maxWidth "Model:Layers:0:MaxWidth = 4 is below Model:Layers:0:Width = 8" "max width"
            Expect.stringContains (errorsOf (fixtureExperiment @ [ "Device", "tpu" ])) "Device = 'tpu'" "device"
            Expect.stringContains (errorsOf (fixtureExperiment @ [ "Training:Optimizer", "lbfgs" ])) "Training:Optimizer = 'lbfgs'" "optimizer"
            Expect.stringContains (errorsOf [ "Model:OutputBias", "true" ]) "Model:Layers" "at least one hidden layer"
            Expect.stringContains (errorsOf (fixtureExperiment @ [ "Output:RunId", "a/b" ])) "Output:RunId" "run id is a folder name"
            Expect.stringContains (errorsOf (fixtureExperiment @ [ "Dataset:Mirror", "mirror.lan/data" ])) "Dataset:Mirror = 'mirror.lan/data'" "a mirror is an http(s) address"
            Expect.stringContains (errorsOf (fixtureExperiment @ [ "Dataset:CropPadding", "-1" ])) "Dataset:CropPadding = -1" "crop padding"
            Expect.stringContains (errorsOf (fixtureExperiment @ [ "Dataset:DownloadStallSeconds", "0" ])) "Dataset:DownloadStallSeconds = 0" "stall timeout"
            Expect.isEmpty (SettingsValidator.Validate(settingsFrom (fixtureExperiment @ [ "Dataset:Mirror", "http://127.0.0.1:8000/cifar/" ]))) "an http mirror is fine"
            Expect.isEmpty (SettingsValidator.Validate(settingsFrom (fixtureExperiment @ [ "Dataset:Mirror", "" ]))) "an empty mirror means none (clears one set below)"
            Expect.stringContains (errorsOf (fixtureExperiment @ [ "Dataset:Mirror", "ftp://mirror.lan/" ])) "Dataset:Mirror = 'ftp://mirror.lan/'" "ftp is not served"
        }

        test "named kinds, strategy and dataset must be served by a plugin; 'none' needs no strategy" {
            use tmp = new TempFolder()
            addFixture tmp.Path "Fixture.GoodPlugin" |> ignore
            let _, catalogue = discover [ tmp.Path ]
            let validate pairs = SettingsValidator.Validate(settingsFrom pairs, catalogue) |> String.concat "\n"
            Expect.equal (validate fixtureExperiment) "" "all names known"
            Expect.equal (validate (fixtureExperiment @ [ "Growth:Strategy", "none" ])) "" "fixed network"
            let unknown = validate (fixtureExperiment @ [ "Growth:Strategy", "nope"; "Model:Layers:0:Kind", "conv"; "Dataset:Name", "cifar" ])
            Expect.stringContains unknown "Growth:Strategy = 'nope'" "strategy key"
            Expect.stringContains unknown "Available: fixture-strategy" "available strategies"
            Expect.stringContains unknown "Model:Layers:0:Kind = 'conv'" "layer kind key"
            Expect.stringContains unknown "Dataset:Name = 'cifar'" "dataset key"
            let refused = validate (fixtureExperiment @ [ "Model:Layers:0:Activation", "fixture-bad" ])
            Expect.stringContains refused "Model:Layers:0: Activation 'fixture-bad' is refused by fixture-kind" "the layer kind validates its spec"
        }

        test "overlay: an upper array replaces the lower one whatever their lengths; other keys survive" {
            let layers n first = [ for i in 0 .. n - 1 -> $"Model:Layers:{i}:Width", string (first + i) ]
            let property (PositiveInt lowerCount) (PositiveInt upperCount) =
                let lower = readOnlyDict ([ "Training:Epochs", "3"; "Plugins:Folders:0", "p" ] @ layers lowerCount 100)
                let upper = readOnlyDict (layers upperCount 200)
                let merged = ConfigurationLayers.Overlay(lower, upper)
                merged.Count = upperCount + 2
                && merged["Training:Epochs"] = "3" && merged["Plugins:Folders:0"] = "p"
                && layers upperCount 200 |> List.forall (fun (k, v) -> merged[k] = v)
            Check.QuickThrowOnFailure property
        }
    ]
