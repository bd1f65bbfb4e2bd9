/// Downloads from a local HTTP server on 127.0.0.1 (started by the tests) and safe archive extraction.
module TinyGrow.Datasets.Tests.DownloadTests

open System
open System.IO
open System.Net.Sockets
open System.Threading
open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Datasets.Cifar
open TinyGrow.Datasets.Downloads
open TinyGrow.Datasets.Mnist
open TinyGrow.Datasets.Tests.Common
open TinyGrow.Datasets.Tests.CifarFiles
open TinyGrow.Datasets.Tests.LocalServer

let online root = DatasetOptions (Root = root, Download = true, DownloadStallSeconds = 10)

let payload = Array.init 300_000 (fun i -> byte (i * 7 % 251))
let payloadFile = RemoteFile ("payload.bin", md5 payload)

let fetch (addresses: string list) (folder: string) (options: DatasetOptions) =
    use d = downloader ()
    d.Fetch (payloadFile, addresses, folder, options, CancellationToken.None)

let downloads =
    testList "downloads" [
        test "success with the right checksum: the file appears whole under its name, nothing else" {
            use server = new LocalServer ()
            server.Serve ("payload.bin", Bytes payload)
            use tmp = new TempFolder ()
            let folder = tmp.File "data"
            let path = fetch [ server.Address ] folder (online tmp.Path)
            Expect.equal path (Path.Combine (folder, "payload.bin")) "path"
            Expect.sequenceEqual (File.ReadAllBytes path) payload "content"
            Expect.equal (listing tmp.Path) [ "data"; "data/payload.bin" ] "no .partial left"
            // Present and verified: not fetched again.
            fetch [ server.Address ] folder (online tmp.Path) |> ignore
            Expect.equal server.Requests [ "payload.bin" ] "downloaded once"
        }
        test "progress: where from, how far along, and the verified end are logged" {
            use server = new LocalServer ()
            server.Serve ("payload.bin", Bytes payload)
            use tmp = new TempFolder ()
            let log = ListLogger<DatasetDownloader> ()
            use d = new DatasetDownloader (log, TimeSpan.Zero)
            d.Fetch (payloadFile, [ server.Address ], tmp.Path, online tmp.Path, CancellationToken.None) |> ignore
            let messages = List.ofSeq log.Messages
            Expect.equal messages.Head $"Downloading payload.bin from {server.Address}payload.bin" "first: the address"
            Expect.exists messages (fun m -> m.StartsWith "payload.bin: " && m.Contains " of 0.3 MB (") "progress lines with the total"
            Expect.equal (List.last messages) "Downloaded payload.bin (0.3 MB), MD5 verified" "last: verified"
        }
        test "progress to a display: the bytes after every read and the end, instead of progress lines" {
            use server = new LocalServer ()
            server.Serve ("payload.bin", Bytes payload)
            use tmp = new TempFolder ()
            let log = ListLogger<DatasetDownloader> ()
            let heard = ResizeArray<string * int64 * Nullable<int64> * bool> ()
            let display = { new IDownloadProgress with member _.Download (file, received, total, isDone) = heard.Add ((file, received, total, isDone)) }
            use d = new DatasetDownloader (log, display)
            d.Fetch (payloadFile, [ server.Address ], tmp.Path, online tmp.Path, CancellationToken.None) |> ignore
            let received = [ for _, r, _, _ in heard -> r ]
            Expect.isGreaterThan heard.Count 1 "reports while the file arrives"
            Expect.equal received (List.sort received) "the bytes received only grow"
            Expect.equal (Seq.last heard) ("payload.bin", int64 payload.Length, Nullable (int64 payload.Length), true) "the last report: complete, with the total"
            Expect.isTrue (heard |> Seq.take (heard.Count - 1) |> Seq.forall (fun (_, _, _, isDone) -> not isDone)) "done only at the end"
            let messages = List.ofSeq log.Messages
            Expect.isFalse (messages |> List.exists (fun m -> m.StartsWith "payload.bin: ")) $"no progress lines: {messages}"
            Expect.equal (List.last messages) "Downloaded payload.bin (0.3 MB), MD5 verified" "the start and end are still logged"
        }
        test "a wrong checksum is refused and nothing is kept" {
            use server = new LocalServer ()
            let other = Array.copy payload
            other[1000] <- other[1000] ^^^ 1uy
            server.Serve ("payload.bin", Bytes other)
            use tmp = new TempFolder ()
            let m = datasetError (fun () -> fetch [ server.Address ] (tmp.File "data") (online tmp.Path) |> ignore)
            expectContains m "payload.bin"
            expectContains m $"MD5 {md5 other}, not the published {payloadFile.Md5}"
            expectContains m "Put payload.bin"
            Expect.isEmpty (listing tmp.Path) "no file, no .partial, not even the folder it created"
        }
        test "an interrupted download leaves nothing that looks complete; the next attempt succeeds" {
            use server = new LocalServer ()
            server.Serve ("payload.bin", CutShort (payload, 100_000))
            use tmp = new TempFolder ()
            let folder = tmp.File "data"
            let m = datasetError (fun () -> fetch [ server.Address ] folder (online tmp.Path) |> ignore)
            expectContains m "payload.bin"
            Expect.isEmpty (listing tmp.Path) "no file, no .partial, not even the folder it created"
            server.Serve ("payload.bin", Bytes payload)
            let path = fetch [ server.Address ] folder (online tmp.Path)
            Expect.sequenceEqual (File.ReadAllBytes path) payload "complete on retry"
        }
        test "a stalled download is abandoned after Dataset:DownloadStallSeconds; nothing is kept" {
            use server = new LocalServer ()
            server.Serve ("payload.bin", Stall (payload, 50_000))
            use tmp = new TempFolder ()
            let options = online tmp.Path
            options.DownloadStallSeconds <- 1
            let m = datasetError (fun () -> fetch [ server.Address ] (tmp.File "data") options |> ignore)
            expectContains m "stalled: no data for 1 s"
            Expect.isEmpty (listing tmp.Path) "no file, no .partial"
        }
        test "cancelling a download (Ctrl+C) ends it as a cancellation and leaves nothing" {
            use server = new LocalServer ()
            server.Serve ("payload.bin", Stall (payload, 50_000))
            use tmp = new TempFolder ()
            use cancel = new CancellationTokenSource (TimeSpan.FromMilliseconds 300.0)
            use d = downloader ()
            Expect.throwsT<OperationCanceledException> (fun () ->
                d.Fetch (payloadFile, [ server.Address ], tmp.File "data", online tmp.Path, cancel.Token) |> ignore) "cancelled"
            Expect.isEmpty (listing tmp.Path) "no file, no .partial, no folder"
        }
        test "two downloads of the same file into the same folder at once both end with the file" {
            use server = new LocalServer ()
            server.Serve ("payload.bin", Bytes payload)
            use tmp = new TempFolder ()
            let folder = tmp.File "data"
            let paths =
                [ for _ in 1 .. 4 -> Threading.Tasks.Task.Run (fun () -> fetch [ server.Address ] folder (online tmp.Path)) ]
                |> List.map (fun t -> t.Result)
            Expect.allEqual paths (Path.Combine (folder, "payload.bin")) "same path"
            Expect.sequenceEqual (File.ReadAllBytes paths.Head) payload "content"
            Expect.equal (listing folder) [ "payload.bin" ] "no partial files left"
        }
        test "a partial file left by a killed download is removed by the next download once stale" {
            use server = new LocalServer ()
            server.Serve ("payload.bin", Bytes payload)
            use tmp = new TempFolder ()
            let folder = Directory.CreateDirectory(tmp.File "data").FullName
            let stale = Path.Combine (folder, "payload.bin.999-dead.partial")
            let fresh = Path.Combine (folder, "payload.bin.998-live.partial")
            File.WriteAllBytes (stale, [| 1uy |])
            File.SetLastWriteTimeUtc (stale, DateTime.UtcNow.AddMinutes -5.0)
            File.WriteAllBytes (fresh, [| 1uy |])
            fetch [ server.Address ] folder (online tmp.Path) |> ignore
            Expect.equal (listing folder) [ "payload.bin"; "payload.bin.998-live.partial" ] "stale one removed, a live one (written recently) kept"
        }
        test "addresses are tried in order: a 404 then a server that has the file" {
            use empty = new LocalServer ()
            use server = new LocalServer ()
            server.Serve ("payload.bin", Bytes payload)
            use tmp = new TempFolder ()
            let path = fetch [ empty.Address; server.Address ] (tmp.File "data") (online tmp.Path)
            Expect.sequenceEqual (File.ReadAllBytes path) payload "from the second"
            Expect.equal empty.Requests [ "payload.bin" ] "first asked"
        }
        test "no network: the error names each address and says where to put the file" {
            use tmp = new TempFolder ()
            use dead = new DeadAddress ()
            let m = datasetError (fun () -> fetch [ dead.Address ] (tmp.File "data") (online tmp.Path) |> ignore)
            expectContains m (dead.Address + "payload.bin")
            expectContains m "Connection refused"
            let folder = tmp.File "data"
            expectContains m $"Put payload.bin (MD5 {payloadFile.Md5}) in {folder}/"
            expectContains m "Dataset:Mirror"
        }
        test "a file already there with another checksum is refused by name, not replaced" {
            use tmp = new TempFolder ()
            let folder = Directory.CreateDirectory(tmp.File "data").FullName
            File.WriteAllBytes (Path.Combine (folder, "payload.bin"), [| 1uy; 2uy |])
            use dead = new DeadAddress ()
            let m = datasetError (fun () -> fetch [ dead.Address ] folder (online tmp.Path) |> ignore)
            expectContains m (Path.Combine (folder, "payload.bin"))
            expectContains m "Delete it to download it again"
            Expect.sequenceEqual (File.ReadAllBytes (Path.Combine (folder, "payload.bin"))) [| 1uy; 2uy |] "untouched"
        }
        test "the mirror replaces the official addresses" {
            let official = [ "https://example.org/a/" ] :> Collections.Generic.IReadOnlyList<_>
            Expect.sequenceEqual (DatasetDownloader.Addresses (DatasetOptions (), official)) official "official by default"
            Expect.sequenceEqual (DatasetDownloader.Addresses (DatasetOptions (Mirror = "http://mirror.lan/x"), official)) [ "http://mirror.lan/x" ] "mirror alone"
        }
    ]

/// Extracts `archive` bytes (written as <tmp>/a.tar.gz) into <tmp>/target; returns the error, if any.
let extract (tmp: TempFolder) (archive: byte[]) =
    let path = tmp.File "a.tar.gz"
    File.WriteAllBytes (path, archive)
    try TarGzArchive.Extract (path, tmp.File "target") |> ignore; None
    with :? DatasetException as e -> Some e.Message

let archives =
    testList "archives" [
        test "a valid archive unpacks whole; the staging folder is gone" {
            use tmp = new TempFolder ()
            let error = extract tmp (tarGz [ FolderEntry "top/"; FileEntry ("top/a.bin", [| 1uy; 2uy |]); FileEntry ("top/sub/b.bin", [| 3uy |]) ])
            Expect.isNone error "extracted"
            Expect.equal (listing (tmp.File "target")) [ "top"; "top/a.bin"; "top/sub"; "top/sub/b.bin" ] "content, no staging folder"
            Expect.sequenceEqual (File.ReadAllBytes (tmp.File "target/top/sub/b.bin")) [| 3uy |] "bytes"
        }
        // <tmp>/target/.extracting-…/ is where entries are written: "../../" reaches <tmp>/ and
        // "../../../" its parent, so the listings below see any escape.
        for name, entries in
            [ "a '../' entry", [ FileEntry ("top/ok.bin", [| 1uy |]); FileEntry ("../escaped.bin", [| 6uy |]) ]
              "a '../../' entry", [ FileEntry ("../../escaped.bin", [| 6uy |]) ]
              "a '../../../' entry", [ FileEntry ("../../../escaped.bin", [| 6uy |]) ]
              "a nested '..' entry", [ FileEntry ("top/../../../escaped.bin", [| 6uy |]) ]
              "a backslash '..' entry", [ FileEntry ("top\\..\\..\\..\\escaped.bin", [| 6uy |]) ]
              "an absolute path", [ FileEntry ("/ABSOLUTE/escaped.bin", [| 6uy |]) ]
              "a symbolic link", [ LinkEntry ("top/link", "/etc"); FileEntry ("top/link/escaped.bin", [| 6uy |]) ]
              "a hard link", [ FileEntry ("top/a.bin", [| 1uy |]); HardLinkEntry ("top/b.bin", "../../../escaped.bin") ]
              "a file named '.'", [ FileEntry ("./", [| 6uy |]) ] ] do
            test $"{name} refuses the archive; nothing is written inside or outside the target" {
                use tmp = new TempFolder ()
                let outside = Path.Combine (tmp.Path, "outside")
                let entries = entries |> List.map (function FileEntry (n, b) -> FileEntry (n.Replace ("/ABSOLUTE", outside), b) | e -> e)
                let siblingsBefore = listing (Path.GetDirectoryName tmp.Path |> string) |> List.filter (fun n -> n.Contains "escaped")
                let m = Expect.wantSome (extract tmp (tarGz entries)) "refused"
                expectContains m "a.tar.gz"
                Expect.equal (listing tmp.Path) [ "a.tar.gz"; "target" ] "only the archive and the (empty) target"
                Expect.isEmpty (listing (tmp.File "target")) "nothing extracted, no staging folder"
                let siblingsAfter = listing (Path.GetDirectoryName tmp.Path |> string) |> List.filter (fun n -> n.Contains "escaped")
                Expect.equal siblingsAfter siblingsBefore "nothing beside the temporary folder"
            }
        test "two entries with the same name: an error naming the archive and the entry" {
            use tmp = new TempFolder ()
            let m = Expect.wantSome (extract tmp (tarGz [ FileEntry ("top/a.bin", [| 1uy |]); FileEntry ("top/a.bin", [| 2uy |]) ])) "refused"
            expectContains m "a.tar.gz: entry 'top/a.bin' could not be written"
            Expect.isEmpty (listing (tmp.File "target")) "nothing extracted"
        }
        test "a global extended-attributes header (git archive writes one) is skipped, not refused" {
            use tmp = new TempFolder ()
            let error = extract tmp (tarGz [ GlobalEntry; FileEntry ("top/a.bin", [| 1uy |]) ])
            Expect.isNone error "extracted"
            Expect.equal (listing (tmp.File "target")) [ "top"; "top/a.bin" ] "content"
        }
        test "several top-level entries move all or none" {
            use tmp = new TempFolder ()
            Directory.CreateDirectory (tmp.File "target/b") |> ignore
            let m = Expect.wantSome (extract tmp (tarGz [ FileEntry ("a/x.bin", [| 1uy |]); FileEntry ("b/y.bin", [| 2uy |]) ])) "refused"
            expectContains m "already exists"
            Expect.equal (listing (tmp.File "target")) [ "b" ] "'a' was moved back out: nothing added"
        }
        test "an existing top-level entry is not overwritten" {
            use tmp = new TempFolder ()
            Directory.CreateDirectory (tmp.File "target/top") |> ignore
            let m = Expect.wantSome (extract tmp (tarGz [ FileEntry ("top/a.bin", [| 1uy |]) ])) "refused"
            expectContains m (Path.Combine (tmp.File "target", "top"))
            Expect.equal (listing (tmp.File "target")) [ "top" ] "untouched"
        }
        test "a corrupt archive names the file" {
            use tmp = new TempFolder ()
            let bytes = tarGz [ FileEntry ("top/a.bin", Array.create 5000 7uy) ]
            let m = Expect.wantSome (extract tmp bytes[.. bytes.Length / 2]) "refused"
            expectContains m "a.tar.gz"
            Expect.isEmpty (listing (tmp.File "target")) "nothing extracted"
        }
    ]

let cifarOnline root = DatasetOptions (Name = "cifar10", Root = root, Download = true, DownloadStallSeconds = 10)

let providers =
    testList "providers download" [
        test "CIFAR-10: archive downloaded once, verified, extracted, loaded" {
            let archive = cifar10Archive ()
            use server = new LocalServer ()
            server.Serve ("cifar-10-binary.tar.gz", Bytes archive)
            use tmp = new TempFolder ()
            let p = CifarDatasetProvider (downloader (), Variants = [ small10 (md5 archive) ], Addresses = [ server.Address ])
            do
                use ds = p.Load ("cifar10", cifarOnline tmp.Path, torch.CPU, CancellationToken.None)
                Expect.equal ds.Train.Samples.shape [| 10L; 3L; 32L; 32L |] "train"
                Expect.equal (ds.Train.Samples[7L, 2L, 5L, 17L].item<byte> ()) (cifarPixel 7 2 5 17) "pixel (7, blue, 5, 17)"
                let folder = Path.Combine (tmp.Path, "cifar10", "cifar-10-batches-bin")
                Expect.sequenceEqual ds.Sources
                    [ for name, bytes in cifar10Files () ->
                        DataFile ((if name = "test_batch.bin" then "test" else "train"), Path.Combine (folder, name), int64 bytes.Length, DataFileOrigin.Download) ]
                    "the six extracted files, each named as downloaded by this run"
            Expect.equal (listing (tmp.File "cifar10"))
                ("cifar-10-binary.tar.gz" :: "cifar-10-batches-bin" :: [ for name, _ in cifar10Files () -> "cifar-10-batches-bin/" + name ] |> List.sort)
                "archive kept, files extracted, nothing else"
            use again = p.Load ("cifar10", cifarOnline tmp.Path, torch.CPU, CancellationToken.None)
            Expect.equal server.Requests [ "cifar-10-binary.tar.gz" ] "downloaded once"
            Expect.isTrue (again.Sources |> Seq.forall (fun f -> f.Origin = DataFileOrigin.Root)) "the next run reads them from Dataset:Root"
        }
        test "CIFAR-10 through Dataset:Mirror when the official address is unreachable" {
            let archive = cifar10Archive ()
            use server = new LocalServer ()
            server.Serve ("cifar-10-binary.tar.gz", Bytes archive)
            use tmp = new TempFolder ()
            use dead = new DeadAddress ()
            let p = CifarDatasetProvider (downloader (), Variants = [ small10 (md5 archive) ], Addresses = [ dead.Address ])
            let options = cifarOnline tmp.Path
            options.Mirror <- server.Address
            use ds = p.Load ("cifar10", options, torch.CPU, CancellationToken.None)
            Expect.equal ds.Test.Count 3L "loaded from the mirror"
        }
        test "CIFAR-10: an interrupted download leaves no dataset; a wrong archive is refused; both say what to do" {
            let archive = cifar10Archive ()
            use server = new LocalServer ()
            server.Serve ("cifar-10-binary.tar.gz", CutShort (archive, archive.Length / 3))
            use tmp = new TempFolder ()
            let p = CifarDatasetProvider (downloader (), Variants = [ small10 (md5 archive) ], Addresses = [ server.Address ])
            let load () = (p.Load ("cifar10", cifarOnline tmp.Path, torch.CPU, CancellationToken.None)).Dispose ()
            let m = datasetError load
            expectContains m "cifar-10-binary.tar.gz"
            Expect.isEmpty (listing tmp.Path) "no archive, no .partial, no extracted folder"
            let evil = tarGz [ FileEntry ("cifar-10-batches-bin/data_batch_1.bin", [| 1uy |]); FileEntry ("../../escaped.bin", [| 6uy |]) ]
            let refusing = CifarDatasetProvider (downloader (), Variants = [ small10 (md5 evil) ], Addresses = [ server.Address ])
            server.Serve ("cifar-10-binary.tar.gz", Bytes evil)
            let m = datasetError (fun () -> (refusing.Load ("cifar10", cifarOnline tmp.Path, torch.CPU, CancellationToken.None)).Dispose ())
            expectContains m "'../../escaped.bin' would be written outside the target folder"
            Expect.equal (listing tmp.Path) [ "cifar10"; "cifar10/cifar-10-binary.tar.gz" ] "only the (verified) archive; nothing extracted"
        }
        test "CIFAR-10: an incomplete extracted folder is refused before anything is downloaded" {
            let archive = cifar10Archive ()
            use server = new LocalServer ()
            server.Serve ("cifar-10-binary.tar.gz", Bytes archive)
            use tmp = new TempFolder ()
            writeFiles (Path.Combine (tmp.Path, "cifar10", "cifar-10-batches-bin")) (cifar10Files () |> List.take 3)
            let p = CifarDatasetProvider (downloader (), Variants = [ small10 (md5 archive) ], Addresses = [ server.Address ])
            let m = datasetError (fun () -> (p.Load ("cifar10", cifarOnline tmp.Path, torch.CPU, CancellationToken.None)).Dispose ())
            expectContains m "cifar-10-batches-bin/ is incomplete (missing data_batch_4.bin, data_batch_5.bin, test_batch.bin): delete it"
            Expect.isEmpty server.Requests "nothing downloaded"
        }
        test "MNIST: the four files downloaded into <Root>/mnist/, verified, loaded" {
            use server = new LocalServer ()
            let files =
                [ "train-images-idx3-ubyte.gz", IdxFiles.gzip (IdxFiles.imagesBytes 3)
                  "train-labels-idx1-ubyte.gz", IdxFiles.gzip (IdxFiles.labelsBytes IdxFiles.trainLabels)
                  "t10k-images-idx3-ubyte.gz", IdxFiles.gzip (IdxFiles.imagesBytes 2)
                  "t10k-labels-idx1-ubyte.gz", IdxFiles.gzip (IdxFiles.labelsBytes IdxFiles.testLabels) ]
            for name, bytes in files do server.Serve (name, Bytes bytes)
            let v = MnistVariant.Mnist
            let variant = MnistVariant (v.Name, v.Mean, v.Std, "", v.InstallHint, [ server.Address ], [ for name, bytes in files -> RemoteFile (name, md5 bytes) ])
            use tmp = new TempFolder ()
            let p = MnistDatasetProvider (downloader (), Variants = [ variant ])
            use ds = p.Load ("mnist", DatasetOptions (Name = "mnist", Root = tmp.Path, Download = true), torch.CPU, CancellationToken.None)
            Expect.equal ds.Train.Count 3L "train"
            Expect.equal (listing (tmp.File "mnist")) (files |> List.map fst |> List.sort) "the four files, nothing else"
            Expect.sequenceEqual ds.Sources
                [ for name, bytes in files -> DataFile ((if name.StartsWith "train" then "train" else "test"), Path.Combine (tmp.Path, "mnist", name), int64 bytes.Length, DataFileOrigin.Download) ]
                "the four files, named as downloaded by this run"
        }
        test "MNIST with no network: the error lists the folders searched and the download failure" {
            let v = MnistVariant.Mnist
            use dead = new DeadAddress ()
            let variant = MnistVariant (v.Name, v.Mean, v.Std, "", v.InstallHint, [ dead.Address ], v.Published)
            use tmp = new TempFolder ()
            let p = MnistDatasetProvider (downloader (), Variants = [ variant ])
            let m = datasetError (fun () -> (p.Load ("mnist", DatasetOptions (Name = "mnist", Root = tmp.Path), torch.CPU, CancellationToken.None)).Dispose ())
            expectContains m "Fix: put the four files in"
            expectContains m "Could not download train-images-idx3-ubyte.gz"
            expectContains m "f68b3c2dcbeaaa9fbdd348bbdeb94873"
        }
    ]

let tests = testList "downloads" [ downloads; archives; providers ]
