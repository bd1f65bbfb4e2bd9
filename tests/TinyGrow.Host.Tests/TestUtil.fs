module TinyGrow.Host.Tests.TestUtil

open System
open System.IO
open Microsoft.Extensions.Configuration
open Microsoft.Extensions.DependencyInjection
open Microsoft.Extensions.Logging.Abstractions
open TinyGrow.Host.Configuration
open TinyGrow.Host.Plugins

/// A fresh folder under the system temp folder, deleted on Dispose and, failing that, when the
/// test process exits: a fixture shared by sequenced tests is disposed by its last test, which a
/// filter, a skip (no PostgreSQL) or a failure may never reach, and each one left holds a few MB.
type TempFolder() =
    let path = Path.Combine(Path.GetTempPath(), "tinygrow-host-tests-" + Guid.NewGuid().ToString "N")
    let delete () = try Directory.Delete(path, true) with _ -> ()
    do Directory.CreateDirectory path |> ignore
    do AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> delete ())
    member _.Path = path
    member _.File(name: string) = Path.Combine(path, name)
    interface IDisposable with
        member _.Dispose() = delete ()

/// The fixture plugin DLL copied into this test's output by the project file.
let fixtureDll (name: string) =
    let dll = Path.Combine(AppContext.BaseDirectory, "fixtures", name, name + ".dll")
    if not (File.Exists dll) then failwithf "fixture %s missing: build tests/TinyGrow.Host.Tests" dll
    dll

/// Lays out <root>/<name>/<name>.dll from a fixture; returns the DLL's path.
let addFixture (root: string) (name: string) =
    let dir = Directory.CreateDirectory(Path.Combine(root, name))
    let dll = Path.Combine(dir.FullName, name + ".dll")
    File.Copy(fixtureDll name, dll)
    dll

/// Lays out <root>/<name>/ with every file of a fixture's folder (the plugin DLL, its private
/// dependencies and deps.json), as a plugin's build output is deployed; returns the plugin DLL's path.
let addFixtureOutput (root: string) (name: string) =
    let source = Path.GetDirectoryName(fixtureDll name) |> nonNull
    let dir = Directory.CreateDirectory(Path.Combine(root, name))
    for file in Directory.GetFiles source do
        File.Copy(file, Path.Combine(dir.FullName, nonNull (Path.GetFileName file)))
    Path.Combine(dir.FullName, name + ".dll")

/// Lays out <root>/<name>/<name>.dll holding random bytes; returns its path.
let addCorrupt (root: string) (name: string) =
    let dir = Directory.CreateDirectory(Path.Combine(root, name))
    let dll = Path.Combine(dir.FullName, name + ".dll")
    let bytes = Array.zeroCreate<byte> 4096
    Random(42).NextBytes bytes
    File.WriteAllBytes(dll, bytes)
    dll

/// Discovery over `folders` (the first is the default folder) and a catalogue over what it found.
let discover (folders: string list) =
    let services = ServiceCollection()
    let result = services.AddTinyGrowPlugins(List.toArray folders)
    let provider = services.BuildServiceProvider()
    result, new PluginCatalogue(result, provider, NullLogger<PluginCatalogue>.Instance)

/// Settings bound from `key = value` pairs (a later pair overrides an earlier one) over the option
/// classes' defaults.
let settingsFrom (pairs: (string * string) list) =
    let values = Collections.Generic.Dictionary<string, string | null>(StringComparer.OrdinalIgnoreCase)
    for k, v in pairs do values[k] <- v
    ConfigurationBuilder()
        .AddInMemoryCollection(values)
        .Build()
    |> TinyGrowSettings.Bind

/// A valid experiment over the fixture plugin's names.
let fixtureExperiment =
    [ "Dataset:Name", "fixture-data"
      "Model:Layers:0:Kind", "fixture-kind"
      "Model:Layers:0:Width", "1"
      "Growth:Strategy", "fixture-strategy"
      "Device", "cpu" ]

let contains (text: string) (part: string) =
    text.Contains(part, StringComparison.Ordinal)

/// The exception `f` throws (the test fails if it throws none).
let thrown (f: unit -> unit) : exn =
    match (try f (); None with e -> Some e) with
    | Some e -> e
    | None -> Expecto.Tests.failtest "expected an exception"

/// Runs `file args` with the caller's TINYGROW* variables removed and `environment` added; returns (exit code,
/// standard output, standard error). Fails the test when it cannot start or runs for over a minute.
let commandOutputs (file: string) (args: string list) (environment: (string * string) list) =
    let info = Diagnostics.ProcessStartInfo(file, RedirectStandardOutput = true, RedirectStandardError = true)
    for a in args do info.ArgumentList.Add a
    for name in info.Environment.Keys |> Seq.filter (fun k -> k.StartsWith "TINYGROW") |> Seq.toList do
        info.Environment.Remove name |> ignore
    for k, v in environment do info.Environment[k] <- v
    use p =
        try
            match Diagnostics.Process.Start info with
            | null -> Expecto.Tests.failtest $"could not start {file}"
            | p -> p
        with :? ComponentModel.Win32Exception as e -> Expecto.Tests.failtest $"could not start {file}: {e.Message}"
    let output = p.StandardOutput.ReadToEndAsync()
    let errors = p.StandardError.ReadToEndAsync()
    if not (p.WaitForExit 60_000) then
        p.Kill true
        Expecto.Tests.failtest $"{file} {String.Join(' ', args)} did not finish in a minute"
    p.ExitCode, output.Result, errors.Result
