/// Plugin authoring as an outsider does it (issues 11 and 22): each template of templates/
/// (`tinygrow-strategy`, `tinygrow-dataset`, `tinygrow-layer`), instantiated outside this
/// repository, builds against the packages of `make pack` alone (no project reference, no
/// HintPath, no network), its output is the plugin's own DLL, and the host finds it in a folder
/// given as one value (`--Plugins:Folders=/path`), lists it and uses it in a run. The packages
/// carry their XML documentation, and TinyGrow.Abstractions brings ILogger<T>.
module TinyGrow.Host.Tests.TemplateTests

open System
open System.IO
open System.IO.Compression
open System.Text.Json
open System.Xml.Linq
open Expecto
open TinyGrow.Host
open TinyGrow.Host.Tests.TestUtil
open TinyGrow.Host.Tests.EndToEndTests

/// The checkout (the tests run from tests/<project>/bin/<config>/net10.0/).
let private repo = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", ".."))
let private packages = Path.Combine(repo, "artifacts", "packages")
let private appDll = Path.Combine(repo, "artifacts", "tinygrow", "tinygrow.dll")

/// Runs `dotnet args` in `workingDirectory` with no build servers (they would outlive the test and
/// hold its output pipes open) and none of the TINYGROW_* variables configuration tests set;
/// returns (exit code, stdout + stderr).
let private dotnet (workingDirectory: string) (args: string list) =
    let info = Diagnostics.ProcessStartInfo("dotnet", WorkingDirectory = workingDirectory, RedirectStandardError = true, RedirectStandardOutput = true)
    for a in args do info.ArgumentList.Add a
    for name in info.Environment.Keys |> Seq.filter (fun k -> k.StartsWith "TINYGROW_") |> Seq.toList do
        info.Environment.Remove name |> ignore
    for name, value in [ "MSBUILDDISABLENODEREUSE", "1"; "DOTNET_CLI_USE_MSBUILD_SERVER", "0"; "UseSharedCompilation", "false"
                         "DOTNET_CLI_TELEMETRY_OPTOUT", "1"; "DOTNET_NOLOGO", "1"; "DOTNET_SKIP_FIRST_TIME_EXPERIENCE", "1" ] do
        info.Environment[name] <- value
    use p =
        match Diagnostics.Process.Start info with
        | null -> failwith "could not start dotnet"
        | p -> p
    let stdout = p.StandardOutput.ReadToEndAsync()
    let stderr = p.StandardError.ReadToEnd()
    if not (p.WaitForExit 300_000) then
        p.Kill true
        p.WaitForExit ()
    p.ExitCode, stdout.Result + stderr

/// NuGet's global packages folder, where the solution's restore put TorchSharp, FSharp.Core, …
let private globalPackages () =
    match Environment.GetEnvironmentVariable "NUGET_PACKAGES" with
    | null | "" -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".nuget", "packages")
    | p -> p

/// What the template tests share, made once: a template hive holding the three templates, and a
/// view of the global package cache without tinygrow.* (see `buildOutside`). In a TempFolder,
/// deleted when the test process exits.
type private Outside = { Folder: TempFolder; Hive: string; Fallback: string }

let private outside =
    lazy (
        for id in [ "TinyGrow.Abstractions"; "TinyGrow.Core" ] do
            if Directory.GetFiles(packages, $"{id}.*.nupkg") |> Array.isEmpty then
                failtestf "no %s package in %s: run `make pack` (make test does)" id packages
        let folder = new TempFolder()
        let hive = folder.File "template-hive"
        let templates = [ for t in [ "strategy-csharp"; "dataset-csharp"; "layer-csharp" ] -> Path.Combine(repo, "templates", t) ]
        let installed, installLog = dotnet folder.Path ([ "new"; "install" ] @ templates @ [ "--debug:custom-hive"; hive ])
        if installed <> 0 then failtestf "dotnet new install: %s" installLog
        // With the cache itself as fallback, a TinyGrow package an author's build left there (same
        // version) would win over the feed.
        let fallback = folder.File "fallback"
        Directory.CreateDirectory fallback |> ignore
        for package in Directory.GetDirectories(globalPackages ()) do
            let id = DirectoryInfo(package).Name
            if not (id.StartsWith("tinygrow.", StringComparison.OrdinalIgnoreCase)) then
                Directory.CreateSymbolicLink(Path.Combine(fallback, id), package) |> ignore
        { Folder = folder; Hive = hive; Fallback = fallback })

/// `dotnet new <shortName> --name <name> --Feed <packages> <args>` into <work>/<name>; the project folder.
let private instantiate (work: TempFolder) (shortName: string) (name: string) (args: string list) =
    let project = work.File name
    let created, createLog =
        dotnet work.Path ([ "new"; shortName; "--name"; name; "--output"; project; "--Feed"; packages
                            "--debug:custom-hive"; outside.Value.Hive ] @ args)
    Expect.equal created 0 $"dotnet new {shortName}: {createLog}"
    let csproj = Path.Combine(project, name + ".csproj")
    Expect.isTrue (File.Exists csproj) "the project is named after --name"
    Expect.isFalse ((File.ReadAllText csproj).Contains "HintPath") "no HintPath"
    project

/// The value of an element's attribute ("" when it has none).
let private attribute (e: XElement) (name: string) =
    match e.Attribute(XName.Get name) with
    | null -> ""
    | a -> a.Value

/// The packages a project file references.
let private packageReferences (project: string) (name: string) =
    XDocument.Load(Path.Combine(project, name + ".csproj")).Descendants(XName.Get "PackageReference")
    |> Seq.map (fun e -> attribute e "Include")
    |> Seq.sort
    |> Seq.toList

/// Builds the project as an author would and returns its output folder, checking that only
/// `restored` (TinyGrow.*) came from a source and that the output holds the plugin's own files only.
let private buildOutside (work: TempFolder) (project: string) (name: string) (restored: string list) =
    // Its own package folder (so TinyGrow.* are taken from this checkout's packages, never from a
    // stale copy in the global cache); everything else from the global cache: offline.
    let ownPackages = work.File "nuget"
    let built, buildLog =
        dotnet project [ "build"; "-c"; "Release"; "-nologo"; "-v"; "minimal"; "-nodeReuse:false"
                         $"-p:RestorePackagesPath={ownPackages}"; $"-p:RestoreFallbackFolders={outside.Value.Fallback}" ]
    Expect.equal built 0 $"dotnet build of the template: {buildLog}"
    let fetched = Directory.GetDirectories ownPackages |> Array.map (fun d -> DirectoryInfo(d).Name) |> Array.sort
    Expect.equal fetched (List.toArray restored) "nothing but TinyGrow.* restored from a source"
    let output = Path.Combine(project, "bin", "Release", "net10.0")
    let files = Directory.GetFiles output |> Array.map (fun f -> nonNull (Path.GetFileName f)) |> Array.sort
    Expect.contains files $"{name}.dll" "the plugin's DLL"
    let listed = String.Join(", ", files)
    // Only the plugin's own files (DLL, .pdb, .deps.json, .runtimeconfig.json): every host
    // assembly, TorchSharp.PyBridge's and its dependencies' included, stays out.
    for f in files do
        Expect.isTrue (f.StartsWith $"{name}.") $"{f} is not the plugin's own file: the host provides it (got {listed})"
    for host in [ "TorchSharp.dll"; "TinyGrow.Abstractions.dll"; "TinyGrow.Core.dll"; "FSharp.Core.dll"
                  "Microsoft.Extensions.DependencyInjection.Abstractions.dll"; "Microsoft.Extensions.Logging.Abstractions.dll" ] do
        Expect.isFalse (Array.contains host files) $"{host} is the host's, not in the plugin's output (got {listed})"
    Expect.isEmpty (Directory.GetDirectories output) $"no runtimes/ or other folders in the plugin's output"
    output

/// Drops the build output in as an author would (the whole folder, named after the DLL) into
/// <work>/my-plugins/, and checks that `tinygrow plugins` lists `served` as a `kind` of the plugin.
let private dropIn (work: TempFolder) (output: string) (name: string) (kind: string) (served: string) =
    let plugins = work.File "my-plugins"
    let folder = Directory.CreateDirectory(Path.Combine(plugins, name)).FullName
    for f in Directory.GetFiles output do File.Copy(f, Path.Combine(folder, FileInfo(f).Name))
    let code, listing = dotnet work.Path [ appDll; "plugins"; $"--Plugins:Folders={plugins}" ]
    Expect.equal code ExitCodes.Ok $"tinygrow plugins: {listing}"
    let row = listing.Split('\n') |> Array.tryFind (fun l -> l.StartsWith $"{name} ")
    let row = Expect.wantSome row $"tinygrow plugins lists {name} ({listing})"
    Expect.stringContains row kind $"{name} is listed as a {kind}"
    Expect.stringContains row $" {served} " $"{name} serves {served}"
    plugins

/// The JSON events of a run's metrics.jsonl named `event`.
let private events (run: string) (event: string) =
    File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
    |> Array.map (fun l -> JsonDocument.Parse(l).RootElement)
    |> Array.filter (fun e -> e.GetProperty("event").GetString() = event)

/// Three classes of six features (class c: mean 3 on features j with j mod 3 = c, 0 elsewhere,
/// unit normal noise) as CSV: label,x0,…,x5 per line, with a header line when asked.
let private writeCsv (path: string) (n: int) (seed: int) (header: bool) =
    let rng = Random seed
    let normal () = sqrt (-2.0 * log (1.0 - rng.NextDouble())) * cos (2.0 * Math.PI * rng.NextDouble())
    let lines =
        [ if header then "label,x0,x1,x2,x3,x4,x5"
          for i in 0 .. n - 1 do
              let c = i % 3
              let values = [ for j in 0 .. 5 -> ((if j % 3 = c then 3.0 else 0.0) + normal ()).ToString("R", Globalization.CultureInfo.InvariantCulture) ]
              String.Join(",", string c :: values) ]
    File.WriteAllLines(path, lines)

let tests =
    testList "plugin templates" [
        test "tinygrow-strategy (C#) builds outside the solution from the packages alone, and the host uses it" {
            use work = new TempFolder()
            let project = instantiate work "tinygrow-strategy" "Acme.Widen" [ "--language"; "C#"; "--StrategyName"; "widen" ]
            let output = buildOutside work project "Acme.Widen" [ "tinygrow.abstractions"; "tinygrow.core" ]
            let plugins = dropIn work output "Acme.Widen" "growth strategy" "widen"
            let mnist = Directory.CreateDirectory(work.File "mnist").FullName
            writeMnist mnist "train" 40 21
            writeMnist mnist "t10k" 10 22
            let code, stderr =
                runApp work.Path [ "run"; "--Dataset:Name=mnist"; $"--Dataset:Root={work.Path}"; "--Training:Epochs=1"; "--Training:BatchSize=20"
                                   "--Growth:StatisticsSamples=20"; "--Growth:GammaSearchSamples=20"; "--Device=cpu"
                                   "--Growth:Strategy=widen"; $"--Plugins:Folders={plugins}"
                                   "--Output:Directory=runs"; "--Output:RunId=widen" ]
            Expect.equal code ExitCodes.Ok $"exit 0 with the template's strategy (stderr: {stderr})"
            let run = work.File(Path.Combine("runs", "widen"))
            let config = JsonDocument.Parse(File.ReadAllText(Path.Combine(run, "config.json"))).RootElement
            Expect.equal (config.GetProperty("Growth").GetProperty("Strategy").GetString()) "widen" "the run used the template's strategy"
            Expect.isNonEmpty (events run "growth") "growth steps were taken with the plugin's proposals"
        }

        test "tinygrow-dataset (C#) builds with only TinyGrow.Abstractions, logs through the host's ILogger<T>, and a run trains on its CSV" {
            use work = new TempFolder()
            let project = instantiate work "tinygrow-dataset" "Acme.Csv" [ "--DatasetName"; "acme-csv" ]
            // The documented constructor (docs/plugins.md: services may take ILogger<T>) with
            // TinyGrow.Abstractions as the only reference: its package brings the logging abstractions.
            Expect.equal (packageReferences project "Acme.Csv") [ "TinyGrow.Abstractions" ] "TinyGrow.Abstractions is the only reference"
            Expect.stringContains (File.ReadAllText(Path.Combine(project, "Acme.Csv.cs"))) "(ILogger<CsvDatasetProvider> logger)" "the provider's constructor takes ILogger<T>"
            let output = buildOutside work project "Acme.Csv" [ "tinygrow.abstractions" ]
            let plugins = dropIn work output "Acme.Csv" "dataset" "acme-csv"

            let data = Directory.CreateDirectory(work.File(Path.Combine("data", "acme-csv"))).FullName
            let train, test = Path.Combine(data, "train.csv"), Path.Combine(data, "test.csv")
            writeCsv train 90 31 true
            writeCsv test 30 32 false
            let run (id: string) =
                runApp work.Path [ "run"; "--Dataset:Name=acme-csv"; "--Dataset:Root=data"; "--Training:Epochs=3"; "--Training:BatchSize=30"
                                   "--Growth:StatisticsSamples=30"; "--Growth:GammaSearchSamples=30"; "--Device=cpu"
                                   $"--Plugins:Folders={plugins}"; "--Output:Directory=runs"; $"--Output:RunId={id}" ]
            let code, stderr = run "csv"
            Expect.equal code ExitCodes.Ok $"exit 0 with the template's dataset (stderr: {stderr})"
            // The plugin's own log line, under its type's category: the host's logger reached it.
            Expect.stringContains stderr "Acme.Csv.CsvDatasetProvider" "the plugin logs under its ILogger<T> category"
            Expect.stringContains stderr $"acme-csv: 90 training and 30 test samples of 6 features, 3 classes, read from {data}" "the plugin's log message"
            let folder = work.File(Path.Combine("runs", "csv"))
            let config = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "config.json"))).RootElement
            let files = [ for f in config.GetProperty("DatasetFiles").EnumerateArray() -> f.GetProperty("Split").GetString(), f.GetProperty("Path").GetString() ]
            Expect.equal files [ "train", train; "test", test ] "config.json records the two CSV files"
            // Chance is 1/3; the classes are apart by 3 standard deviations in two features.
            let last = events folder "epoch" |> Array.last
            let accuracy = last.GetProperty("test_accuracy").GetDouble()
            Expect.isGreaterThanOrEqual accuracy 0.8 $"trained on the file's features: test accuracy {accuracy} (chance 1/3)"

            // A bad value: exit 3, the message names the file, line and value, nothing written.
            let lines = File.ReadAllLines train
            lines[5] <- "1,0.5,abc,0,0,0,0"
            File.WriteAllLines(train, lines)
            let code, stderr = run "bad"
            Expect.equal code ExitCodes.DatasetError $"exit 3 for a bad value (stderr: {stderr})"
            Expect.stringContains stderr $"{train} line 6, value 2: 'abc' is not a finite number" "the message names the file, the line and the value"
            Expect.isFalse (Directory.Exists(work.File(Path.Combine("runs", "bad")))) "no run folder"
            Expect.isFalse (Directory.Exists(work.File(Path.Combine("runs", "bad.partial")))) "no partial run folder"
            // A missing split (the training split good again): the message names the path and what to put there.
            writeCsv train 90 31 true
            File.Delete test
            let code, stderr = run "missing"
            Expect.equal code ExitCodes.DatasetError $"exit 3 for a missing file (stderr: {stderr})"
            Expect.stringContains stderr $"{test} does not exist: put the test split there" "the message names the file and the fix"
        }

        test "tinygrow-layer (C#) builds outside the solution, and a model of its layers grows in a run" {
            use work = new TempFolder()
            let project = instantiate work "tinygrow-layer" "Acme.HeDense" [ "--KindName"; "he-dense" ]
            let output = buildOutside work project "Acme.HeDense" [ "tinygrow.abstractions"; "tinygrow.core" ]
            let plugins = dropIn work output "Acme.HeDense" "layer kind" "he-dense"
            let mnist = Directory.CreateDirectory(work.File "mnist").FullName
            writeMnist mnist "train" 40 23
            writeMnist mnist "t10k" 10 24
            let run (extra: string list) =
                runApp work.Path ([ "run"; "--Dataset:Name=mnist"; $"--Dataset:Root={work.Path}"; "--Training:Epochs=1"; "--Training:BatchSize=20"
                                    "--Growth:StatisticsSamples=20"; "--Growth:GammaSearchSamples=20"; "--Device=cpu"
                                    "--Model:Layers:0:Kind=he-dense"; "--Model:Layers:1:Kind=he-dense"
                                    $"--Plugins:Folders={plugins}"; "--Output:Directory=runs" ] @ extra)
            // The kind checks its spec before anything is written.
            let code, stderr = run [ "--Model:Layers:0:Activation=sigmoid"; "--Output:RunId=refused" ]
            Expect.equal code ExitCodes.BadConfiguration $"exit 2 for an activation the kind does not know (stderr: {stderr})"
            Expect.stringContains stderr "Model:Layers:0: Activation 'sigmoid' is not known to the he-dense kind" "the kind's own message, with the key"
            Expect.isFalse (Directory.Exists(work.File(Path.Combine("runs", "refused")))) "nothing written"

            let code, stderr = run [ "--Model:Layers:0:Activation=relu"; "--Output:RunId=he" ]
            Expect.equal code ExitCodes.Ok $"exit 0 with the template's layer kind (stderr: {stderr})"
            let folder = work.File(Path.Combine("runs", "he"))
            let model = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "model.json"))).RootElement
            let layers = model.GetProperty("Blocks").[0].GetProperty("Layers")
            Expect.equal [ for l in layers.EnumerateArray() -> l.GetProperty("Kind").GetString() ] [ "he-dense"; "he-dense" ] "the model is made of the plugin's layers"
            let growth = events folder "growth"
            Expect.isNonEmpty growth "the plugin's layers grew"
            let widths = (events folder "epoch" |> Array.last).GetProperty("widths")
            Expect.isGreaterThan (widths[0].GetInt32() + widths[1].GetInt32()) 2 "wider than the starting 1/1"
        }

        test "every package of make pack ships its XML documentation beside its DLL; TinyGrow.Abstractions depends on the logging abstractions the host runs with" {
            let nupkgs = Directory.GetFiles(packages, "*.nupkg")
            // <id>.<major>.<minor>.<patch>[-suffix].nupkg
            let ids = nupkgs |> Array.map (fun p -> Text.RegularExpressions.Regex.Match(nonNull (Path.GetFileName p), @"^(.+?)\.\d+\.\d+\.\d+").Groups[1].Value) |> Array.sort
            let found = String.Join(", ", ids)
            for id in [ "TinyGrow.Abstractions"; "TinyGrow.Core"; "TinyGrow.Datasets" ] do
                Expect.contains ids id $"make pack wrote {id} (run `make pack`; got {found})"
            for nupkg in nupkgs do
                use zip = ZipFile.OpenRead nupkg
                let entries = zip.Entries |> Seq.map (fun e -> e.FullName) |> Set.ofSeq
                let dlls = entries |> Set.filter (fun e -> e.StartsWith "lib/" && e.EndsWith ".dll")
                Expect.isNonEmpty dlls $"{nupkg} holds a DLL under lib/"
                for dll in dlls do
                    let xml = nonNull (Path.ChangeExtension(dll, ".xml"))
                    Expect.isTrue (entries.Contains xml) $"{nupkg}: {xml} beside {dll}"
                    use reader = new StreamReader((nonNull (zip.GetEntry xml)).Open())
                    let doc = XDocument.Parse(reader.ReadToEnd())
                    let members = doc.Descendants(XName.Get "member") |> Seq.length
                    Expect.isGreaterThan members 10 $"{xml} documents the assembly's members"

            // The version of Directory.Packages.props, which the host is built with: the plugin
            // compiles against the assembly the host shares with it at run time.
            let central =
                XDocument.Load(Path.Combine(repo, "Directory.Packages.props")).Descendants(XName.Get "PackageVersion")
                |> Seq.find (fun e -> attribute e "Include" = "Microsoft.Extensions.Logging.Abstractions")
            let version = attribute central "Version"
            let abstractions = nupkgs |> Array.find (fun p -> (nonNull (Path.GetFileName p)).StartsWith "TinyGrow.Abstractions.")
            use zip = ZipFile.OpenRead abstractions
            use reader = new StreamReader((zip.Entries |> Seq.find (fun e -> e.FullName.EndsWith ".nuspec")).Open())
            let nuspec = XDocument.Parse(reader.ReadToEnd())
            let dependency =
                nuspec.Descendants()
                |> Seq.filter (fun e -> e.Name.LocalName = "dependency")
                |> Seq.tryFind (fun e -> attribute e "id" = "Microsoft.Extensions.Logging.Abstractions")
            let dependency = Expect.wantSome dependency "TinyGrow.Abstractions depends on Microsoft.Extensions.Logging.Abstractions"
            Expect.equal (attribute dependency "version") version "at the version of Directory.Packages.props"
            let hostVersion = nonNull (typeof<Microsoft.Extensions.Logging.ILogger>.Assembly.GetName().Version)
            let central = Version.Parse version
            Expect.equal (hostVersion.Major, hostVersion.Minor) (central.Major, central.Minor) "the host's logging assembly is that version's"
        }
    ]
