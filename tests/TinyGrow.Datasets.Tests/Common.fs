/// What every dataset test uses: temporary folders, a quiet downloader, error expectations.
module TinyGrow.Datasets.Tests.Common

open System
open System.IO
open Expecto
open Microsoft.Extensions.Logging.Abstractions
open TinyGrow.Abstractions
open TinyGrow.Datasets.Downloads

/// A fresh temporary folder, deleted on Dispose.
type TempFolder () =
    let path = Path.Combine (Path.GetTempPath (), "tinygrow-datasets-" + Guid.NewGuid().ToString "N")
    do Directory.CreateDirectory path |> ignore
    member _.Path = path
    member _.File (name: string) = Path.Combine (path, name)
    interface IDisposable with
        member _.Dispose () = if Directory.Exists path then Directory.Delete (path, true)

/// A downloader that logs nowhere.
let downloader () = new DatasetDownloader (NullLogger<DatasetDownloader>.Instance)

/// A logger that keeps every formatted message.
type ListLogger<'T> () =
    member val Messages = Collections.Concurrent.ConcurrentQueue<string> () with get
    interface Microsoft.Extensions.Logging.ILogger<'T> with
        member _.BeginScope _ = null
        member _.IsEnabled _ = true
        member this.Log (_, _, state, error, formatter) = this.Messages.Enqueue (formatter.Invoke (state, error))

/// The message of the DatasetException that `f` raises.
let datasetError (f: unit -> unit) =
    let message = try f (); None with :? DatasetException as e -> Some e.Message
    match message with
    | Some m -> m
    | None -> failtest "expected a DatasetException"

let expectContains (text: string) (part: string) =
    Expect.stringContains text part (sprintf "message should mention %s" part)

/// Every file and folder under `folder`, relative, sorted.
let listing (folder: string) =
    if Directory.Exists folder then
        Directory.EnumerateFileSystemEntries (folder, "*", SearchOption.AllDirectories)
        |> Seq.map (fun p -> (Path.GetRelativePath (folder, p)).Replace ('\\', '/'))
        |> Seq.sort |> Seq.toList
    else []

/// Makes a FIFO (named pipe) at `path` (mkfifo(1)): opening it for reading waits for a writer.
let makeFifo (path: string) =
    use p = System.Diagnostics.Process.Start ("mkfifo", [ path ])
    p.WaitForExit ()
    if p.ExitCode <> 0 then failwith $"mkfifo {path} failed ({p.ExitCode})"

/// `f ()`, failing the test when it has not returned within `seconds` (a reader blocked on a FIFO never would).
let within (seconds: float) (f: unit -> 'T) : 'T =
    let task = System.Threading.Tasks.Task.Run (fun () -> f ())
    if not (task.Wait (System.TimeSpan.FromSeconds seconds)) then failwith $"did not return within {seconds} s"
    task.Result
