/// metrics.jsonl's versioned format: the schema line a run writes first (once, resume or not), the
/// readers' handling of versions, and docs/metrics.md held to what a real run writes.
module TinyGrow.Host.Tests.MetricsSchemaTests

open System
open System.Collections.Generic
open System.IO
open System.Text.Json
open System.Text.RegularExpressions
open Expecto
open Microsoft.Extensions.Logging.Abstractions
open TinyGrow.Core
open TinyGrow.Host
open TinyGrow.Host.Commands
open TinyGrow.Host.Reports
open TinyGrow.Host.Tests.TestUtil

/// The checkout (the tests run from tests/<project>/bin/<config>/net10.0/).
let private repo = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "..", "..", "..", "..", ".."))

/// A field as docs/metrics.md documents it: its type, and whether every line of its event has it.
type private Documented = { Type: string; Always: bool }

/// docs/metrics.md's tables: event → field → how it is documented. The fields every line has (the
/// "Every line" table) are under "*". A table row is `| `field` | type | unit | present | meaning |`.
let private documented (text: string) =
    let events = Dictionary<string, Dictionary<string, Documented>>()
    let mutable current: string option = None
    for raw in text.Split '\n' do
        let line = raw.TrimEnd '\r'
        let heading = Regex.Match(line, @"^### `(\w+)`\s*$")
        if heading.Success then current <- Some heading.Groups[1].Value
        elif line.StartsWith "#" then current <- (if line = "## Every line" then Some "*" else None)
        else
            match current with
            | Some event when line.StartsWith "| `" ->
                let cells = line.Split '|' |> Array.map (fun c -> c.Trim())
                Expect.isGreaterThanOrEqual cells.Length 7 $"docs/metrics.md: a field row has five columns: {line}"
                if not (events.ContainsKey event) then events[event] <- Dictionary()
                events[event][cells[1].Trim '`'] <- { Type = cells[2]; Always = (cells[4] = "always") }
            | _ -> ()
    events

/// Whether `value` is of the documented JSON type (a number may be null: the engine writes null for NaN and ±∞).
let private ofType (documentedType: string) (value: JsonElement) =
    let all kind (test: JsonElement -> bool) =
        value.ValueKind = JsonValueKind.Array && value.EnumerateArray() |> Seq.forall (fun x -> x.ValueKind = kind && test x)
    match documentedType with
    | "string" -> value.ValueKind = JsonValueKind.String
    | "integer" -> value.ValueKind = JsonValueKind.Number && fst (value.TryGetInt64())
    | "number" -> value.ValueKind = JsonValueKind.Number || value.ValueKind = JsonValueKind.Null
    | "boolean" -> value.ValueKind = JsonValueKind.True || value.ValueKind = JsonValueKind.False
    | "integer array" -> all JsonValueKind.Number (fun x -> fst (x.TryGetInt64()))
    | "string array" -> all JsonValueKind.String (fun _ -> true)
    | other -> failtest $"docs/metrics.md: unknown type '{other}' (string, integer, number, boolean, integer array, string array)"

let private linesOf (path: string) =
    File.ReadAllLines path |> Array.map (fun l -> JsonDocument.Parse(l).RootElement)

let private eventOf (e: JsonElement) = e.GetProperty("event").GetString() |> string

/// Runs the app's run command in process over generated MNIST files with the shipped plugins; returns
/// (exit code, the run's metrics.jsonl). `stopAfterEpoch`: Ctrl-C once that epoch's log line is written.
let private runOn (data: TempFolder) (runId: string) (stopAfterEpoch: int option) (settings: (string * string) list) =
    let mnist = data.File "mnist"
    if not (Directory.Exists mnist) then
        Directory.CreateDirectory mnist |> ignore
        EndToEndTests.writeMnist mnist "train" 60 1
        EndToEndTests.writeMnist mnist "t10k" 20 2
    let _, catalogue = discover [ EndToEndTests.shippedPlugins ]
    let runs = data.File "runs"
    use stop = new Threading.CancellationTokenSource()
    let loggers =
        match stopAfterEpoch with
        | Some epoch -> RunGuardTests.listening (fun _ m -> if m.StartsWith $"epoch {epoch}/" then stop.Cancel())
        | None -> NullLoggerFactory.Instance
    let all =
        [ "Dataset:Name", "mnist"; "Dataset:Root", data.Path; "Training:BatchSize", "20"
          "Device", "cpu"; "Output:Directory", runs; "Output:RunId", runId ] @ settings
    let exit =
        RunCommand(settingsFrom all, catalogue, loggers, TimeProvider.System).ExecuteAsync(stop.Token)
        |> Async.AwaitTask |> Async.RunSynchronously
    let folder = if stopAfterEpoch.IsSome then Path.Combine(runs, runId + ".partial") else Path.Combine(runs, runId)
    exit, Path.Combine(folder, "metrics.jsonl")

let tests =
    testList "metrics schema" [
        test "a new metrics.jsonl starts with the schema line; a writer resumed at a checkpoint's length keeps it once, one started over writes it once" {
            use tmp = new TempFolder()
            let path = tmp.File "metrics.jsonl"
            let write (keep: int64) (epochs: int list) =
                use log = new RunLog(path, keep)
                [ for e in epochs do
                    log.Write("epoch", [ "epoch", box e ])
                    yield log.Length ]
            let lengths = write 0L [ 1; 2 ]
            let schema = """{"event":"schema","schema":1}"""
            Expect.equal MetricsSchema.Line schema "the line this build writes"
            Expect.equal (File.ReadAllLines path) [| schema; """{"event":"epoch","epoch":1}"""; """{"event":"epoch","epoch":2}""" |] "schema line first"
            // A resume from the checkpoint taken after epoch 1: what followed goes, the schema line stays.
            write lengths[0] [ 3 ] |> ignore
            Expect.equal (File.ReadAllLines path) [| schema; """{"event":"epoch","epoch":1}"""; """{"event":"epoch","epoch":3}""" |] "schema line once"
            // A resume with no usable checkpoint starts the file over.
            write 0L [ 4 ] |> ignore
            Expect.equal (File.ReadAllLines path) [| schema; """{"event":"epoch","epoch":4}""" |] "written again, once"
        }

        test "readers: no schema line is version 0; version 1 is read and its line skipped; an unknown or missing version, or a schema line after the first, is refused naming the file" {
            use tmp = new TempFolder()
            let path = tmp.File "metrics.jsonl"
            let epoch = """{"event":"epoch","epoch":1,"train_loss":1.2,"test_loss":0.9,"test_accuracy":0.71,"parameters":6500,"widths":[8,3],"seconds":2.5}"""
            let withLines (lines: string list) = File.WriteAllText(path, String.Join("\n", lines) + "\n")
            withLines [ epoch ]
            let old = RunMetrics.Read path
            Expect.equal (old.Schema, old.Epochs.Count) (0, 1) "a file written before the schema line: version 0, its epoch read"
            Expect.equal (MetricsSchema.Events path |> List.map eventOf) [ "epoch" ] "the bench's reader too"
            withLines [ MetricsSchema.Line; epoch ]
            let current = RunMetrics.Read path
            Expect.equal (current.Schema, current.Epochs.Count) (1, 1) "version 1: read, the schema line is not an event"
            Expect.equal (MetricsSchema.Events path |> List.map eventOf) [ "epoch" ] "the bench's reader skips it"
            let refused (lines: string list) (parts: string list) =
                withLines lines
                let e = thrown (fun () -> RunMetrics.Read path |> ignore)
                Expect.isTrue (e :? ReportException) $"a report error: {e}"
                for part in path :: parts do Expect.stringContains e.Message part part
                let b = thrown (fun () -> MetricsSchema.Events path |> ignore)
                Expect.isTrue (b :? MetricsSchemaException) $"the bench's reader refuses it too: {b}"
                use out = new StringWriter()
                use err = new StringWriter()
                Expect.equal (ReportCommand.Execute(tmp.Path, out, err)) ExitCodes.BadConfiguration "tinygrow report: exit 2"
                Expect.isFalse (File.Exists(tmp.File RunReport.Markdown)) "nothing written"
            refused [ """{"event":"schema","schema":2}"""; epoch ] [ "schema 2"; "reads schemas 0 to 1"; "docs/metrics.md" ]
            refused [ """{"event":"schema","schema":"1"}"""; epoch ] [ "schema \"1\""; "does not read" ]
            refused [ """{"event":"schema"}"""; epoch ] [ "without its version" ]
            refused [ epoch; MetricsSchema.Line ] [ "line 2"; "after the first line" ]
        }

        test "docs/metrics.md documents every event and field a run writes, with its type; every field it marks always is in every line" {
            let doc = documented (File.ReadAllText(Path.Combine(repo, "docs", "metrics.md")))
            Expect.isTrue (doc.ContainsKey "*" && doc["*"].ContainsKey "event") "the event field is documented for every line"
            use data = new TempFolder()
            // A growing run to its end (schema, epoch, growth, after_growth, final), a fixed network's (a final
            // line without the grown networks' field) and one stopped by Ctrl-C (interrupted).
            let grown, grownMetrics =
                runOn data "grown" None
                    [ "Model:Layers:0:Kind", "dense"; "Model:Layers:0:Width", "1"; "Model:Layers:0:MaxWidth", "6"
                      "Model:Layers:1:Kind", "dense"; "Model:Layers:1:Width", "1"; "Model:Layers:1:MaxWidth", "6"
                      "Growth:Strategy", "tiny"; "Growth:StepsPerEpoch", "2"; "Growth:UntilEpoch", "1"
                      "Growth:StatisticsSamples", "30"; "Growth:GammaSearchSamples", "30"; "Training:Epochs", "2" ]
            Expect.equal grown ExitCodes.Ok "the growing run finishes"
            let fixedRun, fixedMetrics =
                runOn data "fixed" None [ "Model:Layers:0:Kind", "dense"; "Model:Layers:0:Width", "2"; "Growth:Strategy", "none"; "Training:Epochs", "1" ]
            Expect.equal fixedRun ExitCodes.Ok "the fixed network's run finishes"
            let stopped, stoppedMetrics =
                runOn data "stopped" (Some 1)
                    [ "Model:Layers:0:Kind", "dense"; "Model:Layers:0:Width", "2"; "Model:Layers:0:MaxWidth", "2"
                      "Growth:Strategy", "none"; "Training:Epochs", "50" ]
            Expect.equal stopped ExitCodes.Cancelled "the stopped run exits 130"
            let files = [ grownMetrics; fixedMetrics; stoppedMetrics ]
            for file in files do
                let lines = linesOf file
                Expect.equal (lines[0].GetRawText()) MetricsSchema.Line $"{file}: the schema line first"
                Expect.equal (lines |> Array.filter (fun e -> eventOf e = MetricsSchema.Event)).Length 1 $"{file}: once"
            let lines = files |> List.toArray |> Array.collect linesOf
            let written = lines |> Array.map eventOf |> Set.ofArray
            Expect.equal written (Set [ "schema"; "epoch"; "growth"; "after_growth"; "final"; "interrupted" ]) "the runs wrote every kind of line"
            Expect.equal (doc.Keys |> Seq.filter ((<>) "*") |> Set.ofSeq) written "docs/metrics.md documents these events, and no other"
            for line in lines do
                let event = eventOf line
                let fields = doc[event]
                for property in line.EnumerateObject() do
                    if property.Name <> "event" then
                        match fields.TryGetValue property.Name with
                        | true, d -> Expect.isTrue (ofType d.Type property.Value) $"`{event}`.`{property.Name}` is documented as {d.Type}, written as {property.Value.GetRawText()}"
                        | _ -> failtest $"`{event}` writes `{property.Name}`, which docs/metrics.md does not document (line: {line.GetRawText()})"
                for KeyValue (name, d) in fields do
                    if d.Always then
                        Expect.isTrue (fst (line.TryGetProperty name)) $"docs/metrics.md says every `{event}` line has `{name}`; this one does not: {line.GetRawText()}"
            // The optional field: a grown network's final line has it, a fixed network's does not.
            let finalOf file = linesOf file |> Array.find (fun e -> eventOf e = "final")
            Expect.isTrue (fst ((finalOf grownMetrics).TryGetProperty "widths_set_by")) "a grown network's final line has widths_set_by"
            Expect.isFalse (fst ((finalOf fixedMetrics).TryGetProperty "widths_set_by")) "a fixed network's has not"
            let finalFields = doc["final"]
            Expect.isFalse finalFields["widths_set_by"].Always "so docs/metrics.md must not say always"
        }
    ]
