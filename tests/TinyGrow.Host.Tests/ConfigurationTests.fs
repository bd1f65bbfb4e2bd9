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

/// Stands for option classes another part of TinyGrow may add (e.g. convolutional blocks).
type ConvBlockProbe() =
    member val Kind = "conv" with get, set
    member val Kernel = 3 with get, set
    member val Pool = "" with get, set
    /// Computed: nothing can set it, so no key names it.
    member this.Area = this.Kernel * this.Kernel

type ProbeOptions() =
    member val Preset = "" with get, set
    member val Blocks = Collections.Generic.List<ConvBlockProbe>() with get, set
    member val Tags = Collections.Generic.Dictionary<string, string>() with get, set

let private errorsOf pairs = SettingsValidator.Validate(settingsFrom pairs) |> String.concat "\n"

// Sequenced: one test sets TINYGROW_* environment variables, which every other test here would read.
let tests =
    testSequenced <| testList "configuration" [
        test "every section of the settings is registered as IOptions<its type>, the bound instance itself" {
            let settings = TinyGrowSettings.Bind (ConfigurationBuilder().AddInMemoryCollection(dict [ "Checkpoint:EverySeconds", "7" ]).Build ())
            use provider = Microsoft.Extensions.DependencyInjection.ServiceCollectionContainerBuilderExtensions.BuildServiceProvider (
                               Microsoft.Extensions.DependencyInjection.ServiceCollection().AddTinyGrowSettings settings)
            let sections = typeof<TinyGrowSettings>.GetProperties () |> Array.filter (fun p -> p.PropertyType.IsClass && p.PropertyType <> typeof<string>)
            Expect.isGreaterThanOrEqual sections.Length 8 "Dataset, Model, Growth, Training, Output, Checkpoint, Plugins, Daemon"
            for section in sections do
                let optionsType = typedefof<Microsoft.Extensions.Options.IOptions<obj>>.MakeGenericType section.PropertyType
                match provider.GetService optionsType with
                | null -> failtest $"Section {section.Name}: no IOptions<{section.PropertyType.Name}> registered, so a plugin asking for it gets nothing"
                | registered ->
                    let value = (nonNull (optionsType.GetProperty "Value")).GetValue registered
                    Expect.isTrue (obj.ReferenceEquals (value, section.GetValue settings)) $"Section {section.Name}: the bound instance"
            Expect.equal settings.Checkpoint.EverySeconds 7.0 "bound from the configuration"
        }
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

        test "an unknown key or a value of the wrong type is an error naming the full key and the nearest known one" {
            let typo = thrown (fun () -> settingsFrom [ "Training:Epoch", "3" ] |> ignore)
            Expect.isTrue (typo :? InvalidConfigurationException) "configuration error"
            Expect.stringContains typo.Message "'Training:Epoch'" "names the unknown key"
            Expect.stringContains typo.Message "nearest known key is 'Training:Epochs'" "and the one meant"
            let nested = thrown (fun () -> settingsFrom [ "Model:Layers:0:Widht", "3" ] |> ignore)
            Expect.stringContains nested.Message "'Model:Layers:0:Widht'" "names the unknown key of a layer"
            Expect.stringContains nested.Message "'Model:Layers:0:Width'" "nearest, with its index"
            let noIndex = thrown (fun () -> settingsFrom [ "Model:Layers:Width", "3" ] |> ignore)
            Expect.stringContains noIndex.Message "'Model:Layers:0:Width'" "a list key without its index"
            let wrongType = thrown (fun () -> settingsFrom [ "Training:Epochs", "many" ] |> ignore)
            Expect.stringContains wrongType.Message "Training:Epochs = 'many'" "names the key and value"
            let section = thrown (fun () -> settingsFrom [ "Training", "3" ] |> ignore)
            Expect.stringContains section.Message "Training = '3'" "a section given a value"
            // nothing close: the keys that exist there, and never an internal key (TINYGROW_CI's "CI")
            let far = thrown (fun () -> settingsFrom [ "foo", "1" ] |> ignore)
            Expect.stringContains far.Message "no key at the top level is close; the known ones are" "lists the keys instead of a far-fetched one"
            Expect.stringContains far.Message "Training" "the sections are among them"
            Expect.isFalse (far.Message.Contains "CI," || far.Message.Contains "'CI'" || far.Message.Contains "contentRoot") $"no internal key offered: {far.Message}"
            let ci = thrown (fun () -> settingsFrom [ "CU", "1" ] |> ignore)
            Expect.isFalse (ci.Message.Contains "'CI'") $"CI is not suggested for a near miss either: {ci.Message}"
            let two = thrown (fun () -> settingsFrom [ "Training:Epoch", "3"; "Growth:Stratgy", "x" ] |> ignore)
            Expect.equal (two.Message.Split('\n').Length) 2 "every unknown key reported at once, one per line"
        }

        // Issue 8: these were a warning (the run went ahead with defaults, exit 0) or not reported at all.
        test "a misspelt section from the command line, the environment or a file is an error naming where it was set" {
            use tmp = new TempFolder()
            File.WriteAllText(tmp.File "appsettings.json", appsettings)
            let cli = thrown (fun () -> build tmp.Path [ "--Trainig:Epochs=2" ] |> TinyGrowSettings.Bind |> ignore)
            Expect.isTrue (cli :? InvalidConfigurationException) "configuration error"
            Expect.stringContains cli.Message "'Trainig:Epochs'" "full key"
            Expect.stringContains cli.Message "'Training:Epochs'" "nearest known key"
            Expect.stringContains cli.Message "--Trainig:Epochs" "set on the command line"
            Environment.SetEnvironmentVariable("TINYGROW_Trainig__Epochs", "3")
            try
                let env = thrown (fun () -> build tmp.Path [] |> TinyGrowSettings.Bind |> ignore)
                Expect.stringContains env.Message "'Trainig:Epochs'" "full key"
                Expect.stringContains env.Message "'Training:Epochs'" "nearest known key"
                Expect.stringContains env.Message "TINYGROW_Trainig__Epochs" "names the variable"
            finally
                Environment.SetEnvironmentVariable("TINYGROW_Trainig__Epochs", null)
            File.WriteAllText(tmp.File "exp.json", """{ "Growth": { "Strategy": "x", "Neurons": 3 } }""")
            let file = thrown (fun () -> build tmp.Path [ "--experiment"; "exp.json" ] |> TinyGrowSettings.Bind |> ignore)
            Expect.stringContains file.Message "'Growth:Neurons'" "full key"
            Expect.stringContains file.Message "'Growth:NeuronsPerStep'" "nearest known key"
            Expect.stringContains file.Message (tmp.File "exp.json") "names the file"
            let logging = thrown (fun () -> build tmp.Path [ "--Logging:Consle:FormatterName=json" ] |> TinyGrowSettings.Bind |> ignore)
            Expect.stringContains logging.Message "'Logging:Consle:FormatterName'" "a logging key no provider reads"
            Expect.stringContains logging.Message "'Logging:Console:FormatterName'" "nearest logging key"
        }

        test "logging levels and options are validated like every other key" {
            let level = thrown (fun () -> settingsFrom (fixtureExperiment @ [ "Logging:LogLevel:Default", "Verbose" ]) |> ignore)
            Expect.isTrue (level :? InvalidConfigurationException) "configuration error, not a crash at host build"
            Expect.stringContains level.Message "Logging:LogLevel:Default = 'Verbose'" "names key and value"
            Expect.stringContains level.Message "Information" "lists the levels"
            let number = thrown (fun () -> settingsFrom (fixtureExperiment @ [ "Logging:Console:LogLevel:TinyGrow", "9" ]) |> ignore)
            Expect.stringContains number.Message "Logging:Console:LogLevel:TinyGrow = '9'" "a number that is no level"
            let flag = thrown (fun () -> settingsFrom (fixtureExperiment @ [ "Logging:Console:FormatterOptions:SingleLine", "yes" ]) |> ignore)
            Expect.stringContains flag.Message "Logging:Console:FormatterOptions:SingleLine = 'yes'" "formatter option of the wrong type"
            settingsFrom (fixtureExperiment @ [ "Logging:LogLevel:TinyGrow.Engine", "debug"
                                                "Logging:Console:FormatterName", "json"
                                                "Logging:Console:FormatterOptions:JsonWriterOptions:Indented", "true" ]) |> ignore
        }

        test "every key of the shipped appsettings.json and experiment files is known" {
            let repo = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", ".."))
            let host = Path.Combine(repo, "src", "Host")
            let experiments = Directory.GetFiles(Path.Combine(repo, "experiments"), "*.json")
            Expect.isNonEmpty experiments "experiment files found"
            for experiment in experiments do
                let settings = ConfigurationBuilder().AddTinyGrowLayers(host, [| "--experiment"; experiment |], repo).Build() |> TinyGrowSettings.Bind
                Expect.isEmpty (SettingsValidator.Validate settings) $"{experiment} over appsettings.json is valid"
        }

        test "an empty Model:Layers in an experiment file replaces the default layers (and is then an error)" {
            use tmp = new TempFolder()
            File.WriteAllText(tmp.File "appsettings.json", appsettings)
            File.WriteAllText(tmp.File "exp.json", """{ "Model": { "Layers": [] } }""")
            let settings = build tmp.Path [ "--experiment"; "exp.json" ] |> TinyGrowSettings.Bind
            Expect.isEmpty settings.Model.Layers "no layer inherited from appsettings"
            Expect.stringContains (SettingsValidator.Validate settings |> String.concat "\n") "Model:Layers = 0 entries" "an error naming the key"
        }

        test "a gap in a list's indices is an error; the next index adds an element" {
            use tmp = new TempFolder()
            File.WriteAllText(tmp.File "appsettings.json", appsettings)
            let gap = thrown (fun () -> build tmp.Path [ "--Model:Layers:5:Width=8" ] |> TinyGrowSettings.Bind |> ignore)
            Expect.isTrue (gap :? InvalidConfigurationException) "configuration error"
            Expect.stringContains gap.Message "Model:Layers:5:Width is set, but Model:Layers:2 is not" "names the key and the gap"
            Expect.stringContains gap.Message "--Model:Layers:5:Width" "where it was set"
            let added = build tmp.Path [ "--Model:Layers:2:Width=8" ] |> TinyGrowSettings.Bind
            Expect.equal (added.Model.Layers |> Seq.map (fun l -> l.Width) |> List.ofSeq) [ 1; 2; 8 ] "a third layer"
            let startsLate = thrown (fun () -> settingsFrom [ "Plugins:Folders:1", "p" ] |> ignore)
            Expect.stringContains startsLate.Message "Plugins:Folders:0 is not" "any list, from 0"
        }

        test "Plugins:Folders takes one path as well as a list; a list of sections still does not take one value" {
            use tmp = new TempFolder()
            File.WriteAllText(tmp.File "appsettings.json", appsettings)
            let one = build tmp.Path [ "--Plugins:Folders=/opt/plugins" ] |> TinyGrowSettings.Bind
            Expect.equal (List.ofSeq one.Plugins.Folders) [ "/opt/plugins" ] "--Plugins:Folders=/path is a list of one"
            let listed = build tmp.Path [ "--Plugins:Folders:0=/a"; "--Plugins:Folders:1=/b" ] |> TinyGrowSettings.Bind
            Expect.equal (List.ofSeq listed.Plugins.Folders) [ "/a"; "/b" ] "the list form"
            let both = build tmp.Path [ "--Plugins:Folders:0=/a"; "--Plugins:Folders=/c" ] |> TinyGrowSettings.Bind
            Expect.equal (List.ofSeq both.Plugins.Folders) [ "/a"; "/c" ] "elements first, then the one value"
            File.WriteAllText(tmp.File "exp.json", """{ "Plugins": { "Folders": "in-file" } }""")
            let file = build tmp.Path [ "--experiment"; "exp.json" ] |> TinyGrowSettings.Bind
            Expect.equal (List.ofSeq file.Plugins.Folders) [ "in-file" ] "a JSON string"
            Environment.SetEnvironmentVariable("TINYGROW_Plugins__Folders", "/from-env")
            try
                let env = build tmp.Path [] |> TinyGrowSettings.Bind
                Expect.equal (List.ofSeq env.Plugins.Folders) [ "/from-env" ] "TINYGROW_Plugins__Folders=/path"
            finally
                Environment.SetEnvironmentVariable("TINYGROW_Plugins__Folders", null)
            let layers = thrown (fun () -> settingsFrom [ "Model:Layers", "3" ] |> ignore)
            Expect.stringContains layers.Message "Model:Layers is a list, set its elements" "a list of sections needs its elements"
        }

        test "widths are bounded: a huge width is an error, not a native crash" {
            let huge = errorsOf (fixtureExperiment @ [ "Model:Layers:0:Width", "10000000"; "Model:Layers:0:MaxWidth", "10000000" ])
            Expect.stringContains huge "Model:Layers:0:Width = 10000000" "width"
            Expect.stringContains huge "Model:Layers:0:MaxWidth = 10000000" "max width"
            Expect.isEmpty (SettingsValidator.Validate(settingsFrom (fixtureExperiment @ [ "Model:Layers:0:MaxWidth", string TinyGrow.Abstractions.LayerSpec.WidthLimit ]))) "the limit itself is fine"
        }

        test "a JSON error names the file, the line and the position" {
            use tmp = new TempFolder()
            File.WriteAllText(tmp.File "bad.json", "{\n  \"Training\": {\n    \"Epochs\": 2,\n    \"BatchSize\": }\n}")
            let e = thrown (fun () -> build tmp.Path [ "--experiment"; "bad.json" ] |> ignore)
            Expect.isTrue (e :? InvalidConfigurationException) "configuration error"
            Expect.stringContains e.Message (tmp.File "bad.json") "names the path"
            Expect.stringContains e.Message "line 4, position 18" "1-based line and position of the '}'"
        }

        test "keys are known from the option types: a property or spec class added there needs no list" {
            let schema = ConfigurationSchema.SectionOf([ typeof<ProbeOptions> ])
            let problems pairs =
                let values = Collections.Generic.Dictionary<string, string | null>()
                for k, v in pairs do values[k] <- v
                StrictKeys.Problems(ConfigurationBuilder().AddInMemoryCollection(values).Build(), schema) |> String.concat "\n"
            Expect.equal (problems [ "Preset", "resnet18"; "Blocks:0:Kernel", "3"; "Blocks:1:Pool", "max"; "Tags:any", "x" ]) "" "all known"
            let typo = problems [ "Blocks:0:Kernal", "3" ]
            Expect.stringContains typo "'Blocks:0:Kernal'" "full key"
            Expect.stringContains typo "'Blocks:0:Kernel'" "nearest, from the spec class"
            Expect.stringContains (problems [ "Blocks:0:Kernel", "three" ]) "Blocks:0:Kernel = 'three'" "value converted to the property's type"
            Expect.stringContains (problems [ "Blocks:0:Area", "9" ]) "'Blocks:0:Area'" "a property without a setter is read by nothing"
        }

        test "run ids are plain folder names that never look unfinished" {
            for bad in [ "a/b"; "x.partial"; "X.PARTIAL"; ".hidden"; "-flag"; "a\u0001b"; "tab\there"; "line\n"; String('a', 101) ] do
                Expect.stringContains (errorsOf (fixtureExperiment @ [ "Output:RunId", bad ])) "Output:RunId" $"'{bad}' refused"
            for good in [ "run-1"; "seed_3.lr0.05"; "20260101-120000" ] do
                Expect.isEmpty (SettingsValidator.Validate(settingsFrom (fixtureExperiment @ [ "Output:RunId", good ]))) $"'{good}' accepted"
        }

        test "the input statistics cache folder: empty is <Output:Directory>/.cache, off is none, a file or a control character is refused" {
            let file = Path.GetTempFileName ()
            try
                for bad in [ file; "cache\u0001"; "a\nb" ] do
                    Expect.stringContains (errorsOf (fixtureExperiment @ [ "Output:CacheDirectory", bad ])) "Output:CacheDirectory" $"'{bad}' refused"
                for good in [ ""; "off"; "cache"; Path.Combine (Path.GetTempPath (), "tinygrow-cache-not-there") ] do
                    Expect.isEmpty (SettingsValidator.Validate(settingsFrom (fixtureExperiment @ [ "Output:CacheDirectory", good ]))) $"'{good}' accepted"
                let output dir cache = TinyGrow.Abstractions.OutputOptions (Directory = dir, CacheDirectory = cache)
                Expect.equal ((output "runs" "").ResolvedCacheDirectory ()) (Path.GetFullPath (Path.Combine ("runs", ".cache"))) "empty: beside the runs"
                Expect.isNull ((output "runs" "off").ResolvedCacheDirectory ()) "off: no cache"
                Expect.equal ((output "runs" "/var/cache/tg").ResolvedCacheDirectory ()) "/var/cache/tg" "a folder as given"
            finally File.Delete file
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
            Expect.stringContains (errorsOf (fixtureExperiment @ [ "Growth:StatisticsFrom", "batches" ])) "Growth:StatisticsFrom = 'batches'" "statistics source"
            Expect.isEmpty (SettingsValidator.Validate(settingsFrom (fixtureExperiment @ [ "Growth:StatisticsFrom", "pass" ]))) "pass is a source"
            let factor = errorsOf (fixtureExperiment @ [ "Growth:InputFactor", "svd" ])
            Expect.stringContains factor "Growth:InputFactor = 'svd'" "input factor"
            Expect.stringContains factor "Use \"exact\" or \"randomized\"" "and the values it takes"
            Expect.isEmpty (SettingsValidator.Validate(settingsFrom (fixtureExperiment @ [ "Growth:InputFactor", "randomized" ]))) "randomized is a factor"
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
