/// checkpoint.bin in a run folder (DESIGN §7): the blocks at their current widths, then the
/// parameters, normalisation buffers, optimizer state, generator states and the epoch's permutation
/// (TorchSharp's tensor format), then a SHA-256 of everything before it. Written to a temporary
/// file, fsync'ed, and renamed over the last one, which is first kept as checkpoint.previous.bin:
/// a checkpoint cut short or damaged fails its checksum and the previous one is used.
module TinyGrow.Core.Checkpoint

open System
open System.IO
open System.Runtime.InteropServices
open System.Security.Cryptography
open System.Text
open System.Text.Json
open System.Text.Json.Serialization
open TorchSharp
open TinyGrow.Abstractions

let fileName = "checkpoint.bin"
let previousName = "checkpoint.previous.bin"
let private magic = "TGCKPT01"B
let private hashBytes = 32

/// The JSON header: what rebuilds the network and tells the shapes of the tensors that follow.
[<CLIMutable>]
type Header =
    { Format: string
      InputShape: int64[]
      Classes: int
      Blocks: BlockSpec[]
      State: RunState
      /// Optimizer state tensors per parameter slot (each shaped like its parameter).
      OptimizerStates: int[]
      /// Byte length of each generator's state.
      Generators: int64[]
      /// Length of the epoch's permutation; 0: none drawn (the epoch has not started).
      Order: int64
      /// SHA-256 (hex) of the run folder's settingsFile when the checkpoint was written; null: none there, or a
      /// checkpoint written before this field (not checked).
      RunSettings: string | null }

let private format = "tinygrow-checkpoint-1"

/// The file a run folder's settings are kept in (written when the run claims its folder, never changed): a
/// checkpoint records its hash, so that one copied in from another run folder is refused, not resumed.
let settingsFile = "run-settings.json"

/// SHA-256 (hex) of `directory`'s settingsFile; null when there is none.
let private settingsHashOf (directory: string) : string | null =
    let path = Path.Combine (directory, settingsFile)
    if File.Exists path then Convert.ToHexString (SHA256.HashData (File.ReadAllBytes path)) else null
let private json = JsonSerializerOptions (NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals)

/// Forwards writes to `inner` and adds them to `hash`.
type private HashingStream(inner: Stream, hash: IncrementalHash) =
    inherit Stream ()
    override _.CanRead = false
    override _.CanSeek = false
    override _.CanWrite = true
    override _.Length = inner.Length
    override _.Position with get () = inner.Position and set _ = raise (NotSupportedException ())
    override _.Flush() = inner.Flush ()
    override _.Read(_, _, _) = raise (NotSupportedException ())
    override _.Seek(_, _) = raise (NotSupportedException ())
    override _.SetLength _ = raise (NotSupportedException ())
    override _.Write(buffer: byte[], offset: int, count: int) =
        hash.AppendData (buffer, offset, count)
        inner.Write (buffer, offset, count)
    override _.Write(buffer: ReadOnlySpan<byte>) =
        hash.AppendData buffer
        inner.Write buffer

module private Native =
    [<DllImport("libc", EntryPoint = "open", SetLastError = true)>]
    extern int openFile(string path, int flags)
    [<DllImport("libc", EntryPoint = "fsync", SetLastError = true)>]
    extern int fsync(int fd)
    [<DllImport("libc", EntryPoint = "close", SetLastError = true)>]
    extern int close(int fd)

/// Makes the renames in `directory` durable (POSIX; elsewhere the rename is all there is).
let private syncDirectory (directory: string) =
    if OperatingSystem.IsLinux () || OperatingSystem.IsMacOS () then
        try
            let fd = Native.openFile (directory, 0)
            if fd >= 0 then
                Native.fsync fd |> ignore
                Native.close fd |> ignore
        with _ -> ()

let private saveTensor (w: BinaryWriter) (t: torch.Tensor) =
    use detached = t.detach ()
    use cpu = detached.cpu ()
    cpu.Save w |> ignore

/// Writes the checkpoint of a run into `directory`; returns its size in bytes.
let write (directory: string) (net: Network) (inputShape: int64[]) (classes: int) (optimizer: IOptimizer)
          (generators: torch.Generator[]) (order: torch.Tensor | null) (state: RunState) : int64 =
    let path = Path.Combine (directory, fileName)
    let temporary = path + ".tmp"
    let states = Array.init net.Parameters.Length optimizer.State
    let generatorStates = generators |> Array.map (fun g -> g.get_state ())
    try
        try
            let header =
                { Format = format; InputShape = inputShape; Classes = classes
                  Blocks = net.Blocks |> Array.map (fun b -> b.CurrentSpec)
                  State = state
                  OptimizerStates = states |> Array.map Array.length
                  Generators = generatorStates |> Array.map (fun s -> s.numel ())
                  Order = (match order with null -> 0L | o -> o.numel ())
                  RunSettings = settingsHashOf directory }
            let size =
                use file = new FileStream (temporary, FileMode.Create, FileAccess.Write, FileShare.None, 1 <<< 20)
                use hash = IncrementalHash.CreateHash HashAlgorithmName.SHA256
                (use hashing = new HashingStream (file, hash)
                 use w = new BinaryWriter (hashing, Encoding.UTF8, true)
                 w.Write magic
                 let headerBytes = JsonSerializer.SerializeToUtf8Bytes (header, json)
                 w.Write headerBytes.Length
                 w.Write headerBytes
                 for p in net.Parameters do saveTensor w p
                 for b in net.Buffers do saveTensor w b
                 for slot in states do for s in slot do saveTensor w s
                 for s in generatorStates do saveTensor w s
                 match order with
                 | null -> ()
                 | o -> saveTensor w o
                 w.Flush ())
                file.Write (hash.GetHashAndReset ())
                file.Flush true
                file.Length
            if File.Exists path then File.Move (path, Path.Combine (directory, previousName), true)
            File.Move (temporary, path)
            syncDirectory directory
            size
        with _ ->
            // A write that failed (a full disk) leaves no partial file taking the space its message asks to free;
            // the checkpoints before it stand.
            (try if File.Exists temporary then File.Delete temporary with _ -> ())
            reraise ()
    finally
        for s in generatorStates do s.Dispose ()

/// Why `path` is not a usable checkpoint (missing, truncated, checksum mismatch), or None.
let problem (path: string) : string option =
    // The size from the file system before any open: a FIFO in the checkpoint's place reports 0 bytes, and opening
    // it would wait for a writer for ever (as would a link to a device).
    let size = if File.Exists path then FileInfo(path).Length else -1L
    if size < 0L then Some "missing"
    elif size < int64 (magic.Length + 4 + hashBytes) then Some $"truncated, or not a regular file ({size} bytes)"
    else
        use file = new FileStream (path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 <<< 20)
        use hash = IncrementalHash.CreateHash HashAlgorithmName.SHA256
        let buffer = Array.zeroCreate<byte> (1 <<< 20)
        let mutable left = file.Length - int64 hashBytes
        while left > 0L do
            let n = file.Read (buffer, 0, int (min left (int64 buffer.Length)))
            if n <= 0 then raise (EndOfStreamException path)
            hash.AppendData (buffer, 0, n)
            left <- left - int64 n
        let stored = Array.zeroCreate<byte> hashBytes
        file.ReadExactly stored
        if stored <> hash.GetHashAndReset () then Some "checksum mismatch (truncated or corrupted)"
        else
            file.Position <- 0L
            let head = Array.zeroCreate<byte> magic.Length
            file.ReadExactly head
            if head <> magic then Some "not a TinyGrow checkpoint" else None

/// A checkpoint's header, read by `r` from the file's start (`path` names it in errors).
let private readHeader (r: BinaryReader) (path: string) : Header =
    r.ReadBytes magic.Length |> ignore
    let length = r.ReadInt32 ()
    match JsonSerializer.Deserialize<Header> (r.ReadBytes length, json) with
    | null -> raise (InvalidDataException $"{path} has an empty header.")
    | h -> h

/// The header of a checkpoint that passed `problem`.
let private headerOf (path: string) : Header =
    use file = new FileStream (path, FileMode.Open, FileAccess.Read, FileShare.Read)
    use r = new BinaryReader (file)
    readHeader r path

/// Why an intact checkpoint in `directory` does not belong to the run there, from its header; None when it does.
/// - It records the hash of another settingsFile: copied from another run folder, whose network, data or schedule
///   may differ (not checked when either hash is missing).
/// - metrics.jsonl holds fewer bytes than when it was written (cut, replaced, or not on disk after a crash: it is
///   flushed, not fsync'ed): a resume would append after lines that are gone, or after half a line.
/// - Those bytes are not the ones the run wrote (their SHA-256 differs: edited, or a checkpoint copied from another
///   run whose settings are the same).
let private notThisRun (directory: string) (path: string) : string option =
    let header = headerOf path
    let metrics = Path.Combine (directory, "metrics.jsonl")
    let metricsBytes = if File.Exists metrics then FileInfo(metrics).Length else 0L
    match header.RunSettings, settingsHashOf directory with
    | NonNull recorded, NonNull current when recorded <> current ->
        Some $"written by another run (its {settingsFile} differs from this folder's: a checkpoint copied from another run folder)"
    | _ when metricsBytes < header.State.MetricsBytes ->
        Some $"metrics.jsonl holds {metricsBytes} bytes, fewer than the {header.State.MetricsBytes} it held at this checkpoint (cut or replaced since)"
    | _ when (match header.State.MetricsSha256 with NonNull recorded -> RunLog.PrefixSha256 (metrics, header.State.MetricsBytes) <> recorded | Null -> false) ->
        Some $"the first {header.State.MetricsBytes} bytes of metrics.jsonl are not the ones this checkpoint's run wrote (edited or replaced since, or the checkpoint was copied from another run)"
    | _ -> None

/// The newest usable checkpoint in `directory` (checkpoint.bin, else checkpoint.previous.bin), and
/// the files refused on the way with why (a missing checkpoint.bin is not a refusal when the
/// previous one exists: a run killed between the two renames leaves just that).
let latest (directory: string) : string option * (string * string) list =
    let candidates = [ fileName; previousName ] |> List.map (fun n -> Path.Combine (directory, n))
    let rec pick refused =
        function
        | [] -> None, List.rev refused
        | path :: rest ->
            match problem path |> Option.orElseWith (fun () -> notThisRun directory path) with
            | None -> Some path, List.rev refused
            | Some "missing" -> pick refused rest
            | Some why -> pick ((path, why) :: refused) rest
    pick [] candidates

/// An open, verified checkpoint: its header, then its tensors read in the order they were written.
type Reader(path: string) =
    let file = File.OpenRead path
    let reader = new BinaryReader (file, Encoding.UTF8, true)
    let header =
        match readHeader reader path with
        | h when h.Format <> format -> invalidOp $"{path} is not a checkpoint of format {format} (it says '{h.Format}')."
        | h -> h

    let load (target: torch.Tensor) =
        use cpu = torch.empty_like(target).cpu ()
        cpu.Load reader |> ignore
        use _ = torch.no_grad ()
        target.copy_ cpu |> ignore

    member _.Path = path
    member _.Header = header

    /// Reads the parameters and buffers into `net` (built from `Header.Blocks`).
    member _.LoadNetwork(net: Network) =
        for p in net.Parameters do load p
        for b in net.Buffers do load b

    /// Reads the optimizer state into `optimizer` (of `net`'s parameters).
    member _.LoadOptimizer(net: Network, optimizer: IOptimizer) =
        let states =
            Array.map2 (fun (p: Modules.Parameter) count ->
                Array.init count (fun _ ->
                    let s = torch.zeros_like p
                    s.DetachFromDisposeScope () |> ignore
                    load s
                    s)) net.Parameters header.OptimizerStates
        optimizer.Restore states

    /// Sets each generator's state, in the order they were written.
    member _.LoadGenerators(generators: torch.Generator[]) =
        Array.iter2 (fun (g: torch.Generator) (length: int64) ->
            use state = torch.empty ([| length |], torch.ScalarType.Byte)
            state.Load reader |> ignore
            g.set_state state |> ignore) generators header.Generators

    /// The epoch's permutation, on `device`; null if none was drawn.
    member _.LoadOrder(device: torch.Device) : torch.Tensor | null =
        if header.Order = 0L then null
        else
            use cpu = torch.empty ([| header.Order |], torch.ScalarType.Int64)
            cpu.Load reader |> ignore
            cpu.``to`` device

    interface IDisposable with
        member _.Dispose() =
            reader.Dispose ()
            file.Dispose ()

/// The newest good checkpoint of the run in `directory`, opened; each refused file is logged by
/// name with why; None (logged) when there is none: the run starts over.
let openLatest (logger: Microsoft.Extensions.Logging.ILogger) (directory: string) : Reader option =
    let path, refused = latest directory
    for file, why in refused do
        Microsoft.Extensions.Logging.LoggerExtensions.LogWarning (logger, "Checkpoint {File} not used: {Why}", file, why)
    match path with
    | Some p ->
        Microsoft.Extensions.Logging.LoggerExtensions.LogInformation (logger, "Resuming from {File}", p)
        Some (new Reader (p))
    | None ->
        Microsoft.Extensions.Logging.LoggerExtensions.LogWarning (logger, "No usable checkpoint in {Folder}: the run starts over from its beginning", directory)
        None

/// Removes the checkpoints of a finished run (its model files hold the result; a finished run is
/// not resumed).
let remove (directory: string) =
    for name in [ fileName; previousName; fileName + ".tmp" ] do
        File.Delete (Path.Combine (directory, name))
