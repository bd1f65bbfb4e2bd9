/// metrics.jsonl: one JSON object per line with an `event` field (schema, growth, after_growth, epoch, interrupted,
/// final), flushed line by line so that a crashed or running job can be read by other tools. docs/metrics.md
/// lists every event and field; a test holds it to what a run writes.
namespace TinyGrow.Core

open System
open System.IO
open System.Text.Json
open System.Text.Json.Nodes

/// metrics.jsonl declares a format version this build does not read, or declares it wrongly.
type MetricsSchemaException(message: string) =
    inherit Exception(message)

/// The version of metrics.jsonl's format. Since version 1 a file's first line is
/// {"event":"schema","schema":1}; a file without it was written before the line existed (version 0,
/// the same events). A reader refuses a version it does not know rather than misread its fields.
[<AbstractClass; Sealed>]
type MetricsSchema =
    /// The version this build writes, and the newest it reads.
    static member Current = 1

    /// The `event` of the schema line.
    static member Event = "schema"

    /// The schema line this build writes first.
    static member Line =
        let o = JsonObject ()
        o["event"] <- JsonValue.Create MetricsSchema.Event
        o["schema"] <- JsonValue.Create MetricsSchema.Current
        o.ToJsonString ()

    /// The version `first`, the first line of `path`, declares: its `schema` when it is the schema line,
    /// 0 when it is any other event (a file written before version 1). A version this build does not
    /// read is a MetricsSchemaException naming the file, the version and what to do.
    static member Check(path: string, first: JsonElement) : int =
        let isSchemaLine =
            first.ValueKind = JsonValueKind.Object
            && (match first.TryGetProperty "event" with
                | true, e -> e.ValueKind = JsonValueKind.String && e.GetString () = MetricsSchema.Event
                | _ -> false)
        if not isSchemaLine then 0
        else
            match first.TryGetProperty "schema" with
            | true, v when v.ValueKind = JsonValueKind.Number && (match v.TryGetInt32 () with | true, n -> n >= 1 && n <= MetricsSchema.Current | _ -> false) ->
                v.GetInt32 ()
            | true, v ->
                raise (MetricsSchemaException (
                    $"{path}: metrics.jsonl schema {v.GetRawText ()}, which this tinygrow does not read (it reads schemas 0 to {MetricsSchema.Current}; " +
                    "docs/metrics.md has their history). Read the file with the tinygrow that wrote it, or a newer one."))
            | _ ->
                raise (MetricsSchemaException (
                    $"{path}: its first line is a schema line without its version (\"schema\": <integer>). The file is corrupt; a run writes {MetricsSchema.Line}."))

    /// Every line of `path`, parsed, with the schema checked and its line left out: the events of a file
    /// this build reads (for tools that read a finished run's file; the report has a reader of its own
    /// that also tolerates a last line cut short).
    static member Events(path: string) : JsonElement list =
        let lines = File.ReadAllLines path |> Array.filter (fun l -> l.Trim().Length > 0)
        let parsed =
            lines |> Array.mapi (fun i line ->
                use document = JsonDocument.Parse line
                let e = document.RootElement.Clone ()
                if i > 0 && MetricsSchema.Check (path, e) > 0 then
                    raise (MetricsSchemaException $"{path} line {i + 1}: a schema line after the first line. The file is corrupt (the schema line is the first line only).")
                e)
        match List.ofArray parsed with
        | [] -> []
        | first :: rest -> if MetricsSchema.Check (path, first) > 0 then rest else first :: rest

/// Writes `path` from byte `keep` on (what came after is dropped: a resumed run rewrites the lines
/// written after its checkpoint); `RunLog path` starts a new file. A file that is empty once cut
/// (a new run, or a resume with no checkpoint) starts with the schema line; a resumed run keeps the
/// one its checkpoint's length covers, so the line is in every file once.
/// It keeps a SHA-256 of every byte in the file (the kept prefix read back at open), which a checkpoint records
/// with the length so that a resume can tell the lines it keeps are the ones the run wrote.
type RunLog(path: string, keep: int64) =
    let hash = System.Security.Cryptography.IncrementalHash.CreateHash System.Security.Cryptography.HashAlgorithmName.SHA256
    let writer =
        let stream = new FileStream (path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.Read)
        stream.SetLength (min keep stream.Length)
        RunLog.AppendPrefix (hash, stream, stream.Length)
        stream.Seek (0L, SeekOrigin.End) |> ignore
        stream

    let writeLine (line: string) =
        let bytes = Text.Encoding.UTF8.GetBytes (line + "\n")
        writer.Write (bytes, 0, bytes.Length)
        writer.Flush ()
        hash.AppendData bytes

    do if writer.Length = 0L then writeLine MetricsSchema.Line

    new(path: string) = new RunLog (path, 0L)

    /// One instance for every line: System.Text.Json caches its metadata per options instance, so a new
    /// one per line paid that set-up on every line.
    static member val private Compact = JsonSerializerOptions (WriteIndented = false)

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

    /// Adds the first `count` bytes of `stream` (fewer when it is shorter) to `hash`, read from its start.
    static member AppendPrefix (hash: System.Security.Cryptography.IncrementalHash, stream: Stream, count: int64) =
        stream.Seek (0L, SeekOrigin.Begin) |> ignore
        let buffer = Array.zeroCreate<byte> 65536
        let mutable left = count
        while left > 0L do
            let read = stream.Read (buffer, 0, int (min left (int64 buffer.Length)))
            if read = 0 then left <- 0L
            else
                hash.AppendData (buffer, 0, read)
                left <- left - int64 read

    /// SHA-256 (hex) of the first `count` bytes of the file at `path`, as `Sha256` gave it when the file was that long.
    static member PrefixSha256 (path: string, count: int64) =
        use hash = System.Security.Cryptography.IncrementalHash.CreateHash System.Security.Cryptography.HashAlgorithmName.SHA256
        if count > 0L then
            use file = new FileStream (path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite)
            RunLog.AppendPrefix (hash, file, count)
        Convert.ToHexString (hash.GetHashAndReset ())

    member _.Path = path

    /// Bytes written so far (every line is flushed): what a checkpoint records.
    member _.Length = writer.Position

    /// SHA-256 (hex) of the file's bytes so far: what a checkpoint records with the length.
    member _.Sha256 = Convert.ToHexString (hash.GetCurrentHash ())

    /// Writes {"event": name, fields...} as one line.
    member _.Write(name: string, fields: (string * obj | null) list) =
        let o = JsonObject ()
        o["event"] <- JsonValue.Create name
        for key, value in fields do
            o[key] <- RunLog.Node value
        writeLine (o.ToJsonString RunLog.Compact)

    interface IDisposable with
        member _.Dispose() =
            writer.Dispose ()
            hash.Dispose ()
