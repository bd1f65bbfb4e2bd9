/// The input statistics cache (issue 23): a junction whose A reads the network's input has an input
/// covariance S2 and whitening W that depend only on the data (DESIGN §4.5), so they are a property of
/// the dataset, kept in a folder shared by runs and computed once: a second run on the same data reads
/// them instead of paying the statistics pass and the factorisation.
///
/// An entry is content-addressed: its file name is the SHA-256 of its key, and the key holds the
/// SHA-256 of the very float32 inputs the statistics are taken on (the 2·StatisticsSamples samples
/// after the loader, the pipeline's normalisation and the augmentation), their shape and dtype, the
/// junction's rows on a probe of two samples (its kind, kernel, bias), its row size and the options the
/// result depends on (RowsPerDimension, EigenCutoff). So a changed dataset file, preprocessing,
/// augmentation, sample count or dtype is a different key, and a miss. Hashing the inputs costs one
/// pass over 2·StatisticsSamples inputs (25 MB at CIFAR-10's 3,072 values), not over the dataset's files.
///
/// The file holds the key text, the tensors (float64, raw) and a SHA-256 of all that: an entry that
/// fails its checksum, is cut short or holds another key is recomputed (with a warning) and rewritten,
/// never used. Written to a temporary file in the same folder and renamed over the entry (atomic on
/// POSIX): processes filling the same entry at once each write a complete file, and the last rename wins.
module TinyGrow.Core.InputStatisticsCache

open System
open System.IO
open System.Security.Cryptography
open System.Text
open TorchSharp
open TinyGrow.Abstractions

let private magic = "TGINCOV1"B
let private hashBytes = 32
/// Part of every key: entries written by another layout of the file or of the key are misses.
let private keyFormat = "tinygrow-input-statistics-1"

/// What identifies an entry: the text (stored in the entry and compared when read) and its SHA-256
/// (the entry's file name).
type Key =
    { Text: string
      Hash: string
      /// Seconds spent hashing the inputs and probing the junction's rows.
      Seconds: float }

/// How an entry was obtained (for the run's log).
type Outcome =
    | Hit of file: string * seconds: float
    | Computed of file: string * writeSeconds: float
    /// Computed, its tensors copied in `copySeconds`, and being written to `file` by `writing` (getOrCompute
    /// in the background), which reports a failure through the warning and never throws; its result is the
    /// seconds the write took (NaN: it failed).
    | Writing of file: string * copySeconds: float * writing: Threading.Tasks.Task<float>
    /// No cache folder, or one that could not be written: computed and not kept.
    | NotKept of why: string
    /// Computed and not written yet (getOrCompute with `store` = Later), its tensors already copied for the write
    /// (`copy`, owned by this outcome until `writeCopy` takes it or `discard` disposes it).
    | Unstored of folder: string * copy: InputWhitening.InputCovariance

/// The tensor detached, contiguous and on the CPU (float32 or float64), whose `bytes` are its values: the
/// caller disposes it. No copy when it is all that already.
let private storageOf (t: torch.Tensor) : torch.Tensor =
    match t.dtype with
    | torch.ScalarType.Float32
    | torch.ScalarType.Float64 ->
        use detached = t.detach ()
        use contiguous = detached.contiguous ()
        contiguous.cpu ()
    | other -> invalidArg "t" $"The input statistics cache keeps float32 or float64 tensors, not {other}."

let private appendTensor (hash: IncrementalHash) (t: torch.Tensor) =
    hash.AppendData (Encoding.UTF8.GetBytes $"{t.dtype}[{String.Join (',', t.shape)}]")
    use values = storageOf t
    hash.AppendData (Span<byte>.op_Implicit values.bytes)

/// The key of a run without a cache (nothing hashed).
let noKey = { Text = ""; Hash = ""; Seconds = 0.0 }

/// The key of junction j's input statistics on inputs x (the samples inputCovariance is given).
let keyOf (net: Network) (j: int) (options: GrowthOptions) (x: torch.Tensor) : Key =
    let clock = Diagnostics.Stopwatch.StartNew ()
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope ()
    let junction = net.Junctions[j]
    use inputs = IncrementalHash.CreateHash HashAlgorithmName.SHA256
    appendTensor inputs x
    // The junction's rows on two samples: what A's kind, kernel, stride, padding and bias make of the input.
    use probe = IncrementalHash.CreateHash HashAlgorithmName.SHA256
    let probeX = x.narrow (0L, 0L, min 2L x.shape[0])
    let _, records = net.ForwardRecording probeX
    use zeros = torch.zeros_like records[j].BOutput
    use rows = junction.Rows (records[j], zeros, 0L, null)
    appendTensor probe rows.ATilde
    let text =
        String.Join ("\n",
            [ keyFormat
              $"inputs {x.dtype}[{String.Join (',', x.shape)}] sha256 {Convert.ToHexStringLower (inputs.GetHashAndReset ())}"
              $"junction {junction.GetType().Name} A {junction.A.Kind} bias {junction.A.HasBias} row size {junction.RowSize}"
              $"junction rows on 2 samples sha256 {Convert.ToHexStringLower (probe.GetHashAndReset ())}"
              $"RowsPerDimension {options.RowsPerDimension}"
              $"EigenCutoff {options.EigenCutoff:R}"
              $"InputFactor {options.InputFactor}" ])
    { Text = text
      Hash = Convert.ToHexStringLower (SHA256.HashData (Encoding.UTF8.GetBytes text))
      Seconds = clock.Elapsed.TotalSeconds }

/// The entry's file in `folder`.
let entryPath (folder: string) (key: Key) = Path.Combine (folder, $"input-{key.Hash}.bin")

/// Whether a[aStart ..] and b[bStart ..] hold the same `count` bytes.
let private sameBytes (a: byte[]) (aStart: int) (b: byte[]) (bStart: int) (count: int) =
    MemoryExtensions.SequenceEqual (ReadOnlySpan (a, aStart, count), ReadOnlySpan (b, bStart, count))

/// A tensor's header as `readTensor` reads it: dtype, rank, shape.
let private writeTensorHeader (w: BinaryWriter) (t: torch.Tensor) =
    w.Write (int t.dtype)
    w.Write (int (t.dim ()))
    for d in t.shape do w.Write d

let private readTensor (r: BinaryReader) : torch.Tensor =
    let dtype : torch.ScalarType = LanguagePrimitives.EnumOfValue (sbyte (r.ReadInt32 ()))
    let width =
        match dtype with
        | torch.ScalarType.Float32 -> 4L
        | torch.ScalarType.Float64 -> 8L
        | other -> raise (InvalidDataException $"a tensor of dtype {other}")
    let rank = r.ReadInt32 ()
    if rank < 0 || rank > 8 then raise (InvalidDataException $"a tensor of rank {rank}")
    let shape = Array.init rank (fun _ -> r.ReadInt64 ())
    let count = shape |> Array.fold (fun n d -> if d < 0L then raise (InvalidDataException "a negative dimension") else n * d) 1L
    if count * width > r.BaseStream.Length - r.BaseStream.Position then raise (InvalidDataException $"a tensor of {count} values in fewer bytes")
    let bytes = r.ReadBytes (int (count * width))
    let t = torch.empty (shape, dtype = dtype)
    t.bytes <- Span bytes
    t

/// Bytes to the file and the hash of what it holds.
let private put (file: Stream, hash: IncrementalHash, bytes: ReadOnlySpan<byte>) =
    file.Write bytes
    hash.AppendData bytes

/// Writes the entry of `key` (magic, key text, fields, tensors, then the SHA-256 of all that) to `file`,
/// hashing as it writes: each tensor's bytes go from its storage to the file and the hash, with no copy
/// of the entry in memory (the 82 MB CIFAR-10 entry was built in a MemoryStream, copied out, then hashed:
/// several passes and allocations of its size where one pass does).
let private writeEntry (file: Stream) (key: Key) (c: InputWhitening.InputCovariance) : unit =
    use hash = IncrementalHash.CreateHash HashAlgorithmName.SHA256
    let putFields (fields: BinaryWriter -> unit) =
        use buffer = new MemoryStream ()
        (use w = new BinaryWriter (buffer, Encoding.UTF8, true) in fields w)
        put (file, hash, ReadOnlySpan (buffer.GetBuffer (), 0, int buffer.Length))
    let putTensor (t: torch.Tensor) =
        use values = storageOf t
        putFields (fun w -> writeTensorHeader w t)
        put (file, hash, Span<byte>.op_Implicit values.bytes)
    putFields (fun w ->
        w.Write magic
        w.Write key.Text
        w.Write c.Samples
        w.Write c.Path
        w.Write c.StatisticsSeconds
        w.Write c.FactorSeconds)
    putTensor c.S2
    putTensor c.Whitening
    file.Write (hash.GetHashAndReset ())

/// Writes `c` as the entry of `key` in `folder` (created if missing): a temporary file of this process,
/// then renamed over the entry.
let private writeFile (folder: string) (key: Key) (c: InputWhitening.InputCovariance) : unit =
    Directory.CreateDirectory folder |> ignore
    let path = entryPath folder key
    let temporary = Path.Combine (folder, $".input-{key.Hash}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp")
    try
        (use file = new FileStream (temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 <<< 20)
         writeEntry file key c
         // Not fsync'ed (measured: it was most of the 0.4–1.0 s an 82 MB entry took to write): a
         // crash may leave the renamed entry without its bytes on disk, which its checksum then refuses.
         file.Flush ())
        File.Move (temporary, path, true)
    finally
        if File.Exists temporary then File.Delete temporary

/// Writes `c` as the entry of `key` in `folder` (created if missing): a temporary file of this process,
/// then renamed over the entry.
let write (folder: string) (key: Key) (c: InputWhitening.InputCovariance) : unit =
    writeFile folder key c

/// The entry of `key` in `folder`: Ok None when there is none, Error why when it is there but not
/// usable (cut short, checksum mismatch, another key, unreadable), Ok (Some c) when it is good.
/// Tensors float64, on the CPU.
let read (folder: string) (key: Key) : Result<InputWhitening.InputCovariance option, string> =
    let path = entryPath folder key
    if not (File.Exists path) then Ok None
    else
        try
            // The size from the file system first, and never more read than that: a FIFO or a device in the entry's
            // place (a shared folder) reports 0 bytes, where opening a FIFO waits for a writer and reading /dev/zero
            // to its end filled memory until the run died of an OutOfMemoryException.
            let length = FileInfo(path).Length
            if length < int64 (magic.Length + hashBytes) then Error $"cut short ({length} bytes)"
            elif length > int64 Array.MaxLength then Error $"too large ({length} bytes) for an entry"
            else
                let bytes = Array.zeroCreate<byte> (int length)
                let read =
                    use file = new FileStream (path, FileMode.Open, FileAccess.Read, FileShare.Read)
                    file.ReadAtLeast (Span<byte> bytes, bytes.Length, false)
                if read < bytes.Length then Error $"cut short ({read} of {length} bytes)"
                else
                    let bodyLength = bytes.Length - hashBytes
                    let actual = SHA256.HashData (ReadOnlySpan (bytes, 0, bodyLength))
                    if not (sameBytes bytes bodyLength actual 0 hashBytes) then Error "checksum mismatch (cut short or corrupted)"
                    elif not (sameBytes bytes 0 magic 0 magic.Length) then Error "not an input statistics entry"
                    else
                        use r = new BinaryReader (new MemoryStream (bytes, magic.Length, bodyLength - magic.Length), Encoding.UTF8)
                        let text = r.ReadString ()
                        if text <> key.Text then Error "it holds another key (a SHA-256 collision of the file name, or a file copied under another name)"
                        else
                            let samples = r.ReadInt64 ()
                            let computedBy = r.ReadString ()
                            let statisticsSeconds = r.ReadDouble ()
                            let factorSeconds = r.ReadDouble ()
                            let s2 = readTensor r
                            try
                                let w = readTensor r
                                if r.BaseStream.Position <> r.BaseStream.Length then
                                    w.Dispose ()
                                    raise (InvalidDataException "bytes after the last tensor")
                                Ok (Some { S2 = s2; Whitening = w; Samples = samples; Path = computedBy
                                           StatisticsSeconds = statisticsSeconds; FactorSeconds = factorSeconds })
                            with _ ->
                                s2.Dispose ()
                                reraise ()
        with
        | :? IOException | :? UnauthorizedAccessException | :? InvalidDataException | :? ArgumentException as e ->
            Error $"unreadable ({e.Message})"

/// How getOrCompute keeps what it computed: written in the caller's time (Now), by a thread of its own once
/// its tensors are copied (Background: the run waits for it when it ends, not when it grows; the entry's
/// hash and file take 0.3–0.8 s for CIFAR-10-shaped inputs), or copied for a write not started yet (Later:
/// Unstored, for `writeCopy`, when the run that wants it is not yet sure to start: InputCovariancesAhead).
type Store =
    | Now
    | Background
    | Later

let private notWritable (folder: string) (e: exn) =
    $"The input statistics cache folder {folder} cannot be written ({e.Message}): the input covariance is used for this run and not kept. Set Output:CacheDirectory to a writable folder, or to \"off\"."

/// A copy of c's tensors for a write (one memcpy each; serialising them into the entry's bytes took 0.2–0.4 s
/// for CIFAR-10's 82 MB), outside the caller's dispose scope: the run's tensors stay its own.
let private copyForWrite (c: InputWhitening.InputCovariance) : InputWhitening.InputCovariance =
    let s2 = c.S2.detach().clone().DetachFromDisposeScope ()
    let w = c.Whitening.detach().clone().DetachFromDisposeScope ()
    { c with S2 = s2; Whitening = w }

/// Writes `copy` (copyForWrite; disposed once written) for `key` into `folder` on a thread of its own: Writing.
/// `copySeconds`: what copying it took. A failed write is reported through `warn`, and its result is NaN.
let writeCopy (folder: string) (key: Key) (copy: InputWhitening.InputCovariance) (warn: string -> unit) (copySeconds: float) : Outcome =
    // On a thread of its own (LongRunning), not the thread pool's: a blocking write held one of the
    // pool's few threads (as many as cores), so the strategy call of the first growth step
    // (ProposalCheck.proposeWithin, a pool task) waited for the pool to add a thread, about 0.5 s
    // (measured on CIFAR-10-shaped inputs: the first solve 0.47–0.56 s against 0.025 s without the write).
    let writing =
        Threading.Tasks.Task.Factory.StartNew ((fun () ->
            let writeClock = Diagnostics.Stopwatch.StartNew ()
            try
                try
                    writeFile folder key copy
                    writeClock.Elapsed.TotalSeconds
                with e ->
                    warn (notWritable folder e)
                    nan
            finally
                (copy :> IDisposable).Dispose ()), Threading.Tasks.TaskCreationOptions.LongRunning)
    Writing (entryPath folder key, copySeconds, writing)

/// Disposes what an outcome holds that no write took (Unstored's copy).
let discard (outcome: Outcome) =
    match outcome with
    | Unstored (_, copy) -> (copy :> IDisposable).Dispose ()
    | _ -> ()

/// Writes `c`, computed for `key`, into `folder` as `how` says. A folder that cannot be written is reported
/// through `warn` and the result used without being kept.
let store (folder: string) (key: Key) (c: InputWhitening.InputCovariance) (warn: string -> unit) (how: Store) : Outcome =
    let path = entryPath folder key
    let clock = Diagnostics.Stopwatch.StartNew ()
    try
        match how with
        | Later -> Unstored (folder, copyForWrite c)
        | Background -> writeCopy folder key (copyForWrite c) warn clock.Elapsed.TotalSeconds
        | Now ->
            write folder key c
            Computed (path, clock.Elapsed.TotalSeconds)
    with
    | :? IOException | :? UnauthorizedAccessException as e ->
        warn (notWritable folder e)
        NotKept e.Message
    // Tensors too large for one entry (over 2 GB): used for this run, not kept.
    | :? ArgumentException | :? OverflowException as e ->
        warn $"The input covariance could not be written to the input statistics cache {path} ({e.Message}): it is used for this run and not kept."
        NotKept e.Message

/// Junction j's InputCovariance on (x, y) from the cache in `folder` (null or empty: no cache), else
/// computed by `compute` and kept there as `how` says (`store`). A damaged or mismatched entry is reported
/// through `warn`, recomputed and rewritten. The tensors come back in the dtype and on the device of x.
let getOrCompute (folder: string | null) (key: Key) (x: torch.Tensor) (warn: string -> unit) (how: Store)
                 (compute: unit -> InputWhitening.InputCovariance) : InputWhitening.InputCovariance * Outcome =
    match folder with
    | null
    | "" -> compute (), NotKept "no cache folder"
    | folder ->
        let path = entryPath folder key
        let clock = Diagnostics.Stopwatch.StartNew ()
        let cached =
            match read folder key with
            | Ok found -> found
            | Error why ->
                warn $"The input statistics cache entry {path} cannot be used ({why}): it is not used; the input covariance is computed again and the entry rewritten."
                None
        match cached with
        | Some c ->
            let onDevice (t: torch.Tensor) =
                if t.device = x.device then t
                else
                    let moved = t.``to`` x.device
                    t.Dispose ()
                    moved
            { c with S2 = onDevice c.S2; Whitening = onDevice c.Whitening }, Hit (path, clock.Elapsed.TotalSeconds)
        | None ->
            let c = compute ()
            c, store folder key c warn how
