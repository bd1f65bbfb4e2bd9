/// metrics.jsonl: one JSON object per line with an `event` field (epoch, growth, final), flushed
/// line by line so that a crashed or running job can be read by other tools.
namespace TinyGrow.Core

open System
open System.IO
open System.Text.Json
open System.Text.Json.Nodes

type RunLog(path: string) =
    let writer = new StreamWriter (path, false)

    static member private Node(value: obj | null) : JsonNode | null =
        match value with
        | null -> null
        | :? string as s -> JsonValue.Create s
        | :? int as i -> JsonValue.Create i
        | :? int64 as i -> JsonValue.Create i
        | :? float as f when Double.IsFinite f -> JsonValue.Create f
        | :? float -> null // NaN/∞ are not JSON
        | :? bool as b -> JsonValue.Create b
        | :? (int[]) as xs -> JsonArray (xs |> Array.map (fun x -> JsonValue.Create x :> JsonNode | null))
        | other -> JsonValue.Create (string other)

    member _.Path = path

    /// Writes {"event": name, fields...} as one line.
    member _.Write(name: string, fields: (string * obj | null) list) =
        let o = JsonObject ()
        o["event"] <- JsonValue.Create name
        for key, value in fields do
            o[key] <- RunLog.Node value
        writer.WriteLine (o.ToJsonString (JsonSerializerOptions (WriteIndented = false)))
        writer.Flush ()

    interface IDisposable with
        member _.Dispose() = writer.Dispose ()
