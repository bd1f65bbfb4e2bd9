/// Random corruptions of small valid files, fed to the dataset readers (issue 8). A reader may give
/// the data the corrupted bytes really hold, or refuse with a DatasetException naming the file;
/// nothing else: no other exception, no hang, no allocation far beyond the file's few kilobytes.
/// Shared by the test suite (fixed seed, bounded count) and `make bench ARGS=fuzz-readers`.
module TinyGrow.Datasets.Tests.ReaderFuzz

open System
open System.IO
open System.Threading.Tasks
open FsCheck
open FsCheck.FSharp
open TinyGrow.Abstractions
open TinyGrow.Datasets.Cifar
open TinyGrow.Datasets.Downloads
open TinyGrow.Datasets.Mnist
open TinyGrow.Datasets.Tests.CifarFiles
open TinyGrow.Datasets.Tests.IdxFiles

/// One change to a file's bytes. Positions are taken modulo the length, so a corruption applies to
/// any file; several apply in turn.
type Corruption =
    | Flip of at: int * mask: byte
    | Truncate of keep: int
    | Insert of at: int * bytes: byte[]
    /// A header field overwritten with an extreme value.
    | Overwrite of at: int * bytes: byte[]

let private bigEndian (v: uint32) = [| byte (v >>> 24); byte (v >>> 16); byte (v >>> 8); byte v |]

/// Extreme values of the fields the readers parse: IDX counts and magic numbers (big-endian int32),
/// tar sizes, modes and checksums (octal text, and GNU base-256 with its high bit), gzip lengths.
let extremes =
    [ for v in [ 0u; 1u; 0x7FFFFFFFu; 0x80000000u; 0xFFFFFFFFu; 0x40000000u; 0x00000803u; 0x00000801u; 0x000008FFu; 0x00010000u ] -> bigEndian v ]
    @ [ "77777777777\000"B; "99999999999 "B; "-1\000"B; "        "B; "\000\000\000\000"B
        Array.append [| 0x80uy |] (Array.create 11 0xFFuy); Array.append [| 0xFFuy |] (Array.create 11 0xFFuy) ]

let apply (bytes: byte[]) (corruption: Corruption) =
    let at (p: int) n = if n = 0 then 0 else p % n
    match corruption with
    | Flip (p, mask) when bytes.Length > 0 ->
        let copy = Array.copy bytes
        let i = at p bytes.Length
        copy[i] <- copy[i] ^^^ mask
        copy
    | Truncate keep when bytes.Length > 0 -> bytes[.. at keep bytes.Length - 1]
    | Insert (p, inserted) ->
        let i = at p (bytes.Length + 1)
        Array.concat [ bytes[.. i - 1]; inserted; bytes[i ..] ]
    | Overwrite (p, field) when bytes.Length > 0 ->
        let copy = Array.copy bytes
        let i = at p bytes.Length
        let n = min field.Length (copy.Length - i)
        Array.blit field 0 copy i n
        copy
    | _ -> bytes

let corrupt (bytes: byte[]) (corruptions: Corruption list) = List.fold apply bytes corruptions

// Half the positions fall in the first kilobyte, where the headers are (IDX: 8–16 bytes; tar: the
// first entry's PAX and ustar headers, 512 bytes each).
let private position = Gen.oneof [ Gen.choose (0, 63); Gen.choose (0, 1023); Gen.choose (0, Int32.MaxValue) ]

let corruption : Gen<Corruption> =
    Gen.oneof [
        Gen.map2 (fun p m -> Flip (p, byte m)) position (Gen.choose (1, 255))
        Gen.map Truncate (Gen.choose (0, Int32.MaxValue))
        Gen.map2 (fun p bs -> Insert (p, bs)) position (Gen.choose (1, 600) |> Gen.bind (fun n -> Gen.arrayOfLength n (Gen.map byte (Gen.choose (0, 255)))))
        Gen.map2 (fun p f -> Overwrite (p, f)) position (Gen.elements extremes)
    ]

/// One to three corruptions in turn.
let corruptions = Gen.choose (1, 3) |> Gen.bind (fun n -> Gen.listOfLength n corruption)

/// What the readers did over a run: the original data, other data the bytes really hold, a refusal.
type Tally = { mutable Same: int; mutable Changed: int; mutable Refused: int }

type Outcome<'T> =
    | Read of 'T
    | Refused of message: string

/// Most a reader may allocate (managed) for one file of a few kilobytes: its read buffers (the
/// extractor copies through a 1 MB one per entry), never the sizes a corrupt header announces.
let allocationLimit = 64L <<< 20
let hangLimit = TimeSpan.FromSeconds 30.0

/// Runs `read` on a worker thread and classifies the outcome; any other behaviour fails (an
/// exception FsCheck reports with the corruption that caused it).
let attempt (path: string) (read: unit -> 'T) : Outcome<'T> =
    let work = Task.Run (fun () ->
        let before = GC.GetAllocatedBytesForCurrentThread ()
        let result = try Ok (read ()) with e -> Error e
        result, GC.GetAllocatedBytesForCurrentThread () - before)
    if not (work.Wait hangLimit) then failwithf "%s: the reader did not return within %O" path hangLimit
    let result, allocated = work.Result
    if allocated > allocationLimit then failwithf "%s: the reader allocated %d bytes" path allocated
    match result with
    | Ok data -> Read data
    | Error (:? DatasetException as e) when e.Message.Contains path -> Refused e.Message
    | Error e -> failwithf "%s: %s instead of a DatasetException naming the file: %O" path (e.GetType().Name) e

let private count (tally: Tally) same = if same then tally.Same <- tally.Same + 1 else tally.Changed <- tally.Changed + 1

/// How a corruption reaches a gzip-compressed file: in the data before compression (the reader's
/// parser sees it), or in the compressed bytes (gzip's CRC-32 and length must catch it).
type Layer =
    | Raw
    | GzipOfCorrupted
    | CorruptedGzip

let private layered layer (original: byte[]) cs =
    match layer with
    | Raw -> corrupt original cs, corrupt original cs
    | GzipOfCorrupted -> let c = corrupt original cs in gzip c, c
    | CorruptedGzip ->
        // The IDX reader goes by content: bytes that no longer start as gzip are a raw file (the
        // bench once made a valid 0-label IDX file of a corrupted .gz).
        let c = corrupt (gzip original) cs
        c, (if c.Length >= 2 && c[0] = 0x1fuy && c[1] = 0x8buy then original else c)

/// IDX images and labels: a successful read, written back as IDX, is the content exactly.
let idx (layer: Layer) (labels: bool) (folder: string) (tally: Tally) (cs: Corruption list) =
    let original = if labels then labelsBytes trainLabels else imagesBytes 3
    let file, content = layered layer original cs
    let path = Path.Combine (folder, if labels then "labels-idx1-ubyte" else "images-idx3-ubyte")
    File.WriteAllBytes (path, file)
    let outcome =
        attempt path (fun () ->
            if labels then
                let l = IdxReader.ReadLabels (path, 10)
                idxBytes IdxReader.LabelsMagic [| l.Length |] l
            else
                let i = IdxReader.ReadImages path
                idxBytes IdxReader.ImagesMagic [| i.Count; i.Rows; i.Columns |] i.Pixels)
    match outcome with
    | Refused _ -> tally.Refused <- tally.Refused + 1
    | Read back when back = content -> count tally (back = original)
    | Read _ -> failwithf "%s: read data that the file does not hold" path

/// The binary CIFAR reader on one file of three records (CIFAR-10, or CIFAR-100 fine labels):
/// a successful read is each record's class byte and pixels exactly.
let cifar (hundred: bool) (folder: string) (tally: Tally) (cs: Corruption list) =
    let variant = if hundred then small100 true else small10 ""
    let labels = if hundred then [ for k in 0 .. 2 -> [| byte k; byte (90 + k) |] ] else [ for l in cifar10TestLabels -> [| l |] ]
    let original = recordsBytes 100 labels
    let bytes = corrupt original cs
    let path = Path.Combine (folder, "test.bin")
    File.WriteAllBytes (path, bytes)
    let outcome =
        attempt path (fun () ->
            let split = CifarReader.Read (variant, ResizeArray [ struct (path, CifarFile ("test.bin", 3)) ])
            use pixels = split.Pixels
            split.Labels, pixels.bytes.ToArray ())
    let record = variant.RecordBytes
    match outcome with
    | Refused _ -> tally.Refused <- tally.Refused + 1
    | Read (got, pixels) ->
        if bytes.Length <> 3 * record then failwithf "%s: read %d bytes as 3 records" path bytes.Length
        let expectedLabels = [| for k in 0 .. 2 -> bytes[k * record + variant.LabelIndex] |]
        let expectedPixels = Array.concat [ for k in 0 .. 2 -> bytes[k * record + variant.LabelBytes .. (k + 1) * record - 1] ]
        if got <> expectedLabels || pixels <> expectedPixels then failwithf "%s: read data that the file does not hold" path
        count tally (bytes = original)

// Every entry under `folder`, relative, with its bytes (none for a folder); a link is a failure.
let private contents (folder: string) =
    let entries = if Directory.Exists folder then Directory.GetFileSystemEntries (folder, "*", SearchOption.AllDirectories) else [||]
    [ for p in Array.sort entries ->
        if (FileInfo p).LinkTarget <> null then failwithf "%s: the extractor wrote a link" p
        Path.GetRelativePath (folder, p), (if File.Exists p then File.ReadAllBytes p else [||]) ]

// The files the intact archive extracts to.
let private expectedTree : Lazy<(string * byte[]) list> =
    lazy (
        let folder = Directory.CreateTempSubdirectory("tinygrow-fuzz-").FullName
        try
            let path = Path.Combine (folder, "a.tar.gz")
            File.WriteAllBytes (path, gzip (tarBytes (cifar10Entries ())))
            TarGzArchive.Extract (path, Path.Combine (folder, "out")) |> ignore
            contents (Path.Combine (folder, "out"))
        finally Directory.Delete (folder, true))

/// The tar.gz extractor on the small CIFAR-10 archive: a refusal adds nothing to the target folder;
/// an extraction writes only regular files and folders inside it, and when the corruption was in
/// the compressed bytes, exactly the original files.
let tarGzArchive (layer: Layer) (folder: string) (tally: Tally) (cs: Corruption list) =
    let original = tarBytes (cifar10Entries ())
    let archive, _ = layered (if layer = Raw then GzipOfCorrupted else layer) original cs
    let path = Path.Combine (folder, "cifar-10-binary.tar.gz")
    let target = Path.Combine (folder, "out")
    File.WriteAllBytes (path, archive)
    try
        match attempt path (fun () -> TarGzArchive.Extract (path, target)) with
        | Refused _ ->
            if not (List.isEmpty (contents target)) then failwithf "%s: refused, but left files in %s" path target
            tally.Refused <- tally.Refused + 1
        | Read _ ->
            let extracted = contents target
            let same = extracted = expectedTree.Value
            if layer = CorruptedGzip && not same then failwithf "%s: a corrupt compressed stream extracted other files" path
            count tally same
    finally
        if Directory.Exists target then Directory.Delete (target, true)

/// Every target: a name and its property.
let targets : (string * (string -> Tally -> Corruption list -> unit)) list =
    [ "IDX images, raw", idx Raw false
      "IDX labels, raw", idx Raw true
      "IDX images, gzip of corrupted", idx GzipOfCorrupted false
      "IDX labels, corrupted gzip", idx CorruptedGzip true
      "IDX images, corrupted gzip", idx CorruptedGzip false
      "CIFAR-10 records", cifar false
      "CIFAR-100 records", cifar true
      "tar.gz, corrupted tar", tarGzArchive Raw
      "tar.gz, corrupted gzip", tarGzArchive CorruptedGzip ]

/// Runs `property` on `cases` random corruptions drawn from `seed`; throws on the first failure
/// (with the corruption and the seed to replay it); returns what the reader did.
let check (cases: int) (seed: uint64) (property: string -> Tally -> Corruption list -> unit) =
    let folder = Directory.CreateTempSubdirectory("tinygrow-fuzz-").FullName
    let tally = { Same = 0; Changed = 0; Refused = 0 }
    try
        let config = Config.QuickThrowOnFailure.WithMaxTest(cases).WithQuietOnSuccess(true).WithReplay(Some { Rnd = Rnd seed; Size = None })
        Check.One (config, Prop.forAll (Arb.fromGen corruptions) (fun cs -> property folder tally cs))
        tally
    finally Directory.Delete (folder, true)
