/// Plugin authoring as an outsider does it (issue 11): the `tinygrow-strategy` template, instantiated
/// outside this repository, builds against the packages of `make pack` alone (no project reference,
/// no HintPath, no network), its output is the plugin's own DLL, and the host finds it in a folder
/// given as one value (`--Plugins:Folders=/path`) and grows a network with it.
module TinyGrow.Host.Tests.TemplateTests

open System
open System.IO
open System.Text.Json
open Expecto
open TinyGrow.Host
open TinyGrow.Host.Tests.TestUtil
open TinyGrow.Host.Tests.EndToEndTests

/// The checkout (the tests run from tests/<project>/bin/<config>/net10.0/).
let private repo = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", ".."))
let private packages = Path.Combine(repo, "artifacts", "packages")

/// Runs `dotnet args` in `workingDirectory` with no build servers (they would outlive the test and
/// hold its output pipes open); returns (exit code, stdout + stderr).
let private dotnet (workingDirectory: string) (args: string list) =
    let info = Diagnostics.ProcessStartInfo("dotnet", WorkingDirectory = workingDirectory, RedirectStandardError = true, RedirectStandardOutput = true)
    for a in args do info.ArgumentList.Add a
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

let tests =
    testList "plugin template" [
        test "tinygrow-strategy (C#) builds outside the solution from the packages alone, and the host uses it" {
            for id in [ "TinyGrow.Abstractions"; "TinyGrow.Core" ] do
                if Directory.GetFiles(packages, $"{id}.*.nupkg") |> Array.isEmpty then
                    failtestf "no %s package in %s: run `make pack` (make test does)" id packages
            use work = new TempFolder()
            let hive = work.File "template-hive"
            let installed, installLog =
                dotnet work.Path [ "new"; "install"; Path.Combine(repo, "templates", "strategy-csharp"); "--debug:custom-hive"; hive ]
            Expect.equal installed 0 $"dotnet new install: {installLog}"
            let project = work.File "Acme.Widen"
            let created, createLog =
                dotnet work.Path [ "new"; "tinygrow-strategy"; "--language"; "C#"; "--name"; "Acme.Widen"; "--output"; project
                                   "--StrategyName"; "widen"; "--Feed"; packages; "--debug:custom-hive"; hive ]
            Expect.equal created 0 $"dotnet new tinygrow-strategy: {createLog}"
            Expect.isTrue (File.Exists(Path.Combine(project, "Acme.Widen.csproj"))) "the project is named after --name"
            Expect.isFalse ((File.ReadAllText(Path.Combine(project, "Acme.Widen.csproj"))).Contains "HintPath") "no HintPath"

            // Its own package folder (so TinyGrow.* are taken from this checkout's packages, never
            // from a stale copy in the global cache); everything else from the global cache: offline.
            // The fallback is a view of the global cache without tinygrow.*: with the cache itself, a
            // TinyGrow package an author's build left there (same version) would win over the feed.
            let ownPackages, fallback = work.File "nuget", work.File "fallback"
            Directory.CreateDirectory fallback |> ignore
            for package in Directory.GetDirectories(globalPackages ()) do
                let id = DirectoryInfo(package).Name
                if not (id.StartsWith("tinygrow.", StringComparison.OrdinalIgnoreCase)) then
                    Directory.CreateSymbolicLink(Path.Combine(fallback, id), package) |> ignore
            let built, buildLog =
                dotnet project [ "build"; "-c"; "Release"; "-nologo"; "-v"; "minimal"; "-nodeReuse:false"
                                 $"-p:RestorePackagesPath={ownPackages}"; $"-p:RestoreFallbackFolders={fallback}" ]
            Expect.equal built 0 $"dotnet build of the template: {buildLog}"
            // Offline: only TinyGrow.* were taken from a source (the local feed); the rest was in the cache.
            let fetched = Directory.GetDirectories ownPackages |> Array.map (fun d -> DirectoryInfo(d).Name) |> Array.sort
            Expect.equal fetched [| "tinygrow.abstractions"; "tinygrow.core" |] "nothing but TinyGrow.* restored from a source"
            let output = Path.Combine(project, "bin", "Release", "net10.0")
            let files = Directory.GetFiles output |> Array.map Path.GetFileName |> Array.sort
            Expect.contains files "Acme.Widen.dll" "the plugin's DLL"
            let listed = String.Join(", ", files)
            // Only the plugin's own files (DLL, .pdb, .deps.json, .runtimeconfig.json): every host
            // assembly, TorchSharp.PyBridge's and its dependencies' included, stays out.
            for f in files do
                Expect.isTrue (f.StartsWith "Acme.Widen.") $"{f} is not the plugin's own file: the host provides it (got {listed})"
            for host in [ "TorchSharp.dll"; "TinyGrow.Abstractions.dll"; "TinyGrow.Core.dll"; "FSharp.Core.dll"
                          "Microsoft.Extensions.DependencyInjection.Abstractions.dll" ] do
                Expect.isFalse (Array.contains host files) $"{host} is the host's, not in the plugin's output (got {listed})"
            Expect.isEmpty (Directory.GetDirectories output) $"no runtimes/ or other folders in the plugin's output"

            // Dropped in as an author would: the whole output folder, named after the DLL.
            let plugins = work.File "my-plugins"
            let folder = Directory.CreateDirectory(Path.Combine(plugins, "Acme.Widen")).FullName
            for f in Directory.GetFiles output do File.Copy(f, Path.Combine(folder, FileInfo(f).Name))
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
            let growth =
                File.ReadAllLines(Path.Combine(run, "metrics.jsonl"))
                |> Array.map (fun l -> JsonDocument.Parse(l).RootElement)
                |> Array.filter (fun e -> e.GetProperty("event").GetString() = "growth")
            Expect.isNonEmpty growth "growth steps were taken with the plugin's proposals"
        }
    ]
