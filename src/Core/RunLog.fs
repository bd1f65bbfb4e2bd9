/// metrics.jsonl: one JSON object per line with an `event` field (growth, after_growth, epoch, interrupted, final), flushed
/// line by line so that a crashed or running job can be read by other tools.
namespace TinyGrow.Core

open System
open System.IO
open System.Text.Json
open System.Text.Json.Nodes

/// Writes `path` from byte `keep` on (what came after is dropped: a resumed run rewrites the lines
/// written after its checkpoint); `RunLog path` starts a new file.
type RunLog(path: string, keep: int64) =
    let writer =
        let stream = new FileStream (path, FileMode.OpenOrCreate, FileAccess.Write, FileShare.Read)
        stream.SetLength (min keep stream.Length)
        stream.Seek (0L, SeekOrigin.End) |> ignore
        new StreamWriter (stream)

    new(path: string) = new RunLog (path, 0L)

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
        | :? (string[]) as xs -> JsonArray (xs |> Array.map (fun x -> JsonValue.Create x :> JsonNode | null))
        | other -> JsonValue.Create (string other)

    member _.Path = path

    /// Bytes written so far (every line is flushed): what a checkpoint records.
    member _.Length = writer.BaseStream.Position

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
