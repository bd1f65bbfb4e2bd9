/// The readers against hostile files: FsCheck corruptions (ReaderFuzz) with a fixed seed, and
/// headers that announce far more data than the file holds.
module TinyGrow.Datasets.Tests.FuzzTests

open System
open System.IO
open Expecto
open TinyGrow.Datasets.Mnist
open TinyGrow.Datasets.Tests.Common
open TinyGrow.Datasets.Tests.IdxFiles
open TinyGrow.Datasets.Tests.ReaderFuzz

/// Cases per target in the suite (seconds); `make bench ARGS="fuzz-readers N"` runs more.
let casesPerTarget = 400
let seed = 20261130UL

// A labels header announcing 2^30 labels, followed by 92 bytes: the old reader allocated the 1 GB
// before finding the file short.
let private hugeLabelsHeader = Array.append (idxBytes IdxReader.LabelsMagic [| 1 <<< 30 |] [||]) (Array.create 92 1uy)

let private managedAllocation (f: unit -> unit) =
    let before = GC.GetAllocatedBytesForCurrentThread ()
    f ()
    GC.GetAllocatedBytesForCurrentThread () - before

let tests =
    testList "Hostile files" [
        testList "FsCheck corruptions (every outcome: the bytes' data, or a DatasetException naming the file)" [
            for name, property in targets ->
                testCase name <| fun () ->
                    let tally = check casesPerTarget seed property
                    Expect.equal (tally.Same + tally.Changed + tally.Refused) casesPerTarget "every case classified"
                    // The corruptions reach both outcomes: a property never refused (or never read) tests nothing.
                    Expect.isGreaterThan tally.Refused 0 "some corruptions refused"
                    Expect.isGreaterThan (tally.Same + tally.Changed) 0 "some corruptions harmless or read as data"
        ]
        testList "Corruptions the longer bench run found (each crashed or passed unnoticed before its fix)" [
            testCase "a tar size field of 8 GB in a PAX header (InvalidOperationException in TarReader)" <| fun () ->
                let tally = check 1 seed (fun folder tally _ -> tarGzArchive Raw folder tally [ Overwrite (124, "77777777777\000"B) ])
                Expect.equal tally.Refused 1 "refused, naming the archive"
            testCase "an archive cut before its gzip trailer (the tar's end marker was reached, so it extracted whole)" <| fun () ->
                use tmp = new TempFolder ()
                let archive = tmp.File "cifar-10-binary.tar.gz"
                let bytes = CifarFiles.cifar10Archive ()
                File.WriteAllBytes (archive, bytes[.. bytes.Length - 9])
                let message = datasetError (fun () -> TinyGrow.Datasets.Downloads.TarGzArchive.Extract (archive, tmp.File "out") |> ignore)
                expectContains message archive
                expectContains message "trailer"
                Expect.isEmpty (listing (tmp.File "out")) "nothing extracted"
            testCase "a .gz IDX file whose corruption leaves a valid raw IDX file is read as what it holds" <| fun () ->
                let tally = check 1 seed (fun folder tally _ -> idx CorruptedGzip true folder tally [ Overwrite (0, [| 0uy; 0uy; 8uy; 1uy; 0uy; 0uy; 0uy; 0uy |]); Truncate 8 ])
                Expect.equal tally.Changed 1 "an empty labels file, as its bytes say"
        ]
        testList "A header announcing 2^30 items in a 100-byte file" [
            for compressed in [ false; true ] ->
                testCase (if compressed then "gzip: refused without allocating them" else "raw: refused without allocating them") <| fun () ->
                    use tmp = new TempFolder ()
                    let path = tmp.File "t10k-labels-idx1-ubyte"
                    File.WriteAllBytes (path, if compressed then gzip hugeLabelsHeader else hugeLabelsHeader)
                    let mutable message = ""
                    let allocated = managedAllocation (fun () -> message <- datasetError (fun () -> IdxReader.ReadLabels (path, 10) |> ignore))
                    expectContains message path
                    expectContains message "truncated"
                    expectContains message (string (1 <<< 30))
                    Expect.isLessThan allocated (4L <<< 20) "allocated a few buffers, not the gigabyte the header announces"
        ]
    ]
