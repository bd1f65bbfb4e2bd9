/// CIFAR provider and reader on small files in the official binary layout, written by the tests.
module TinyGrow.Datasets.Tests.CifarTests

open System.IO
open System.Threading
open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Datasets.Cifar
open TinyGrow.Datasets.Tests.Common
open TinyGrow.Datasets.Tests.CifarFiles

let provider (variants: CifarVariant list) = CifarDatasetProvider (downloader (), Variants = variants)

let offline root name = DatasetOptions (Name = name, Root = root, Download = false)

let load (p: CifarDatasetProvider) name root =
    p.Load (name, offline root name, torch.CPU, CancellationToken.None)

/// Small CIFAR-10 in <root>/cifar10/cifar-10-batches-bin/.
let writeCifar10 (root: string) = writeFiles (Path.Combine (root, "cifar10", "cifar-10-batches-bin")) (cifar10Files ())

/// Expects every stored byte of `split` to be cifarPixel of images `first`, `first`+1, ...
let checkPixels (split: DataSplit) (first: int) =
    let n = int split.Count
    let expected = [| for i in 0 .. n - 1 do for c in 0 .. 2 do for r in 0 .. 31 do for col in 0 .. 31 -> cifarPixel (first + i) c r col |]
    Expect.sequenceEqual (split.Samples.data<byte>().ToArray ()) expected "every pixel in [n, C, H, W] order"

let labelsOf (split: DataSplit) = split.Labels.data<int64>().ToArray ()

let layouts =
    testList "official layouts" [
        test "cifar10: shapes, labels, pixel order, normalisation" {
            use tmp = new TempFolder ()
            writeCifar10 tmp.Path
            use ds = load (provider [ small10 "" ]) "cifar10" tmp.Path
            Expect.equal ds.Name "cifar10" "name"
            Expect.equal ds.InputShape [| 3L; 32L; 32L |] "input shape"
            Expect.equal ds.Classes 10 "classes"
            Expect.equal ds.Train.Samples.shape [| 10L; 3L; 32L; 32L |] "train [10, 3, 32, 32]"
            Expect.equal ds.Train.Samples.dtype torch.uint8 "stored as uint8"
            Expect.equal ds.Test.Samples.shape [| 3L; 3L; 32L; 32L |] "test [3, 3, 32, 32]"
            Expect.sequenceEqual (labelsOf ds.Train) (cifar10TrainLabels |> Array.map int64) "train labels, files in order"
            Expect.sequenceEqual (labelsOf ds.Test) (cifar10TestLabels |> Array.map int64) "test labels"
            checkPixels ds.Train 0
            checkPixels ds.Test 100
            // One pixel spelled out: image 7 (2nd record of data_batch_4.bin), blue, row 5, column 17.
            let stored = ds.Train.Samples[7L, 2L, 5L, 17L].item<byte> ()
            Expect.equal stored (cifarPixel 7 2 5 17) "pixel (7, blue, 5, 17)"
            use inputs = ds.Pipeline.Inputs ds.Train.Samples
            Expect.equal inputs.dtype torch.float32 "inputs float32"
            let value = inputs[7L, 2L, 5L, 17L].item<float32> ()
            // float32 with three roundings (x·(1/(255σ)) − μ/σ): a few units of 2⁻²⁴ relative.
            Expect.floatClose { absolute = 1e-6; relative = 5e-7 } (float value) ((float stored / 255.0 - 0.4465) / 0.2616) "normalised with the blue channel's constants"
        }
        test "cifar100: fine labels (100 classes) and coarse labels (20 classes) from the same files" {
            use tmp = new TempFolder ()
            writeFiles (Path.Combine (tmp.Path, "cifar100", "cifar-100-binary")) (cifar100Files ())
            let p = provider [ small100 true; small100 false ]
            use fine = load p "cifar100" tmp.Path
            Expect.equal fine.Classes 100 "fine classes"
            Expect.sequenceEqual (labelsOf fine.Train) [ for _, f in cifar100Train -> int64 f ] "fine train labels"
            Expect.sequenceEqual (labelsOf fine.Test) [ for _, f in cifar100Test -> int64 f ] "fine test labels"
            checkPixels fine.Train 0
            checkPixels fine.Test 100
            use coarse = load p "cifar100-coarse" tmp.Path
            Expect.equal coarse.Classes 20 "coarse classes"
            Expect.sequenceEqual (labelsOf coarse.Train) [ for c, _ in cifar100Train -> int64 c ] "coarse train labels"
            checkPixels coarse.Train 0
        }
        test "<Root>/cifar-10-batches-bin/ is found too" {
            use tmp = new TempFolder ()
            writeFiles (Path.Combine (tmp.Path, "cifar-10-batches-bin")) (cifar10Files ())
            use ds = load (provider [ small10 "" ]) "CIFAR10" tmp.Path
            Expect.equal ds.Train.Count 10L "train count"
        }
        test "the shipped variants: official names, files, record counts and checksums" {
            Expect.sequenceEqual (CifarDatasetProvider (downloader ()) :> IDatasetProvider).Names [ "cifar10"; "cifar100"; "cifar100-coarse" ] "names"
            let c10 = CifarVariant.Cifar10
            Expect.equal [ for f in c10.Train -> f.Name, f.Records ] [ for i in 1 .. 5 -> $"data_batch_{i}.bin", 10000 ] "CIFAR-10 training files"
            Expect.equal c10.RecordBytes 3073 "CIFAR-10 record"
            Expect.equal CifarVariant.Cifar100.RecordBytes 3074 "CIFAR-100 record"
            Expect.equal (CifarVariant.Cifar100.Train |> Seq.sumBy (fun f -> f.Records)) 50000 "CIFAR-100 train"
            Expect.equal c10.Archive.Md5 "c32a1d4ab5d03f1284b67883e8d87530" "published MD5 of cifar-10-binary.tar.gz"
            Expect.equal CifarVariant.Cifar100.Archive.Md5 "03b5dce01913d631647c71ecec9e9cb8" "published MD5 of cifar-100-binary.tar.gz"
        }
        test "module registers the provider" {
            let m = CifarPluginModule () :> IPluginModule
            Expect.equal m.ContractVersion Contract.Version "contract version"
            let services = Microsoft.Extensions.DependencyInjection.ServiceCollection ()
            m.Register services
            Expect.equal (Seq.exactlyOne services).ImplementationType typeof<CifarDatasetProvider> "implementation"
        }
    ]

/// Writes small CIFAR-10, replaces one file, loads: returns the error; nothing may be added to the root.
let brokenCifar10 (fileName: string) (bytes: byte[]) =
    use tmp = new TempFolder ()
    writeCifar10 tmp.Path
    File.WriteAllBytes (Path.Combine (tmp.Path, "cifar10", "cifar-10-batches-bin", fileName), bytes)
    let before = listing tmp.Path
    let message = datasetError (fun () -> (load (provider [ small10 "" ]) "cifar10" tmp.Path).Dispose ())
    Expect.equal (listing tmp.Path) before "nothing written, nothing left behind"
    message

let errors =
    testList "bad input names the file" [
        test "truncated file" {
            let bytes = snd (cifar10Files ()).[2]
            let m = brokenCifar10 "data_batch_3.bin" bytes[.. bytes.Length - 101]
            expectContains m "data_batch_3.bin"
            expectContains m $"{bytes.Length - 100} bytes is not a whole number of 3073-byte records"
            expectContains m "Delete"
        }
        test "wrong record size (CIFAR-100 records where CIFAR-10 ones belong)" {
            let m = brokenCifar10 "data_batch_2.bin" (recordsBytes 2 [ [| 1uy; 2uy |]; [| 3uy; 4uy |] ])
            expectContains m "data_batch_2.bin"
            expectContains m "not a whole number of 3073-byte records"
        }
        test "truncated at a record boundary: the record count differs from the official one" {
            let m = brokenCifar10 "test_batch.bin" (recordsBytes 100 [ [| 1uy |] ])
            expectContains m "test_batch.bin"
            expectContains m "1 records, the official test_batch.bin holds 3"
        }
        test "a FIFO in a data file's place is refused by name, not opened" {
            use tmp = new TempFolder ()
            writeCifar10 tmp.Path
            let path = Path.Combine (tmp.Path, "cifar10", "cifar-10-batches-bin", "data_batch_3.bin")
            File.Delete path
            makeFifo path
            let m = within 20.0 (fun () -> datasetError (fun () -> (load (provider [ small10 "" ]) "cifar10" tmp.Path).Dispose ()))
            expectContains m "data_batch_3.bin"
            expectContains m "a FIFO"
        }
        test "label out of range" {
            let m = brokenCifar10 "data_batch_5.bin" (recordsBytes 8 [ [| 1uy |]; [| 10uy |] ])
            expectContains m "data_batch_5.bin"
            expectContains m "record 1 has label 10"
            expectContains m "10 classes"
        }
        test "CIFAR-100: fine label 100 and coarse label 20 are out of range" {
            use tmp = new TempFolder ()
            let folder = Path.Combine (tmp.Path, "cifar100", "cifar-100-binary")
            writeFiles folder (cifar100Files ())
            File.WriteAllBytes (Path.Combine (folder, "test.bin"), recordsBytes 100 [ [| 20uy; 1uy |]; [| 0uy; 100uy |] ])
            let p = provider [ small100 true; small100 false ]
            let fine = datasetError (fun () -> (load p "cifar100" tmp.Path).Dispose ())
            expectContains fine "test.bin: record 1 has label 100"
            let coarse = datasetError (fun () -> (load p "cifar100-coarse" tmp.Path).Dispose ())
            expectContains coarse "test.bin: record 0 has label 20"
        }
        test "missing files, downloads off: the folders searched, the archive, its checksum and where to put it" {
            use tmp = new TempFolder ()
            let m = datasetError (fun () -> (load (provider [ small10 "0123456789abcdef0123456789abcdef" ]) "cifar10" tmp.Path).Dispose ())
            expectContains m (Path.Combine (tmp.Path, "cifar10", "cifar-10-batches-bin"))
            expectContains m (Path.Combine (tmp.Path, "cifar-10-batches-bin"))
            expectContains m "data_batch_1.bin"
            expectContains m "cifar-10-binary.tar.gz (MD5 0123456789abcdef0123456789abcdef)"
            let folder = Path.Combine (tmp.Path, "cifar10")
            expectContains m $"in {folder}/"
            expectContains m "Dataset:Download=false"
            Expect.isEmpty (listing tmp.Path) "nothing created"
        }
        test "unknown dataset name" {
            use tmp = new TempFolder ()
            let m = datasetError (fun () -> (load (CifarDatasetProvider (downloader ())) "cifar1000" tmp.Path).Dispose ())
            expectContains m "cifar1000"
            expectContains m "cifar100-coarse"
        }
    ]

let tests = testList "cifar" [ layouts; errors ]
