/// MNIST / Fashion-MNIST provider and IDX reader on small files the tests write (and delete).
module TinyGrow.Datasets.Tests.MnistTests

open System.IO
open System.Threading
open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Datasets.Mnist
open TinyGrow.Datasets.Tests.Common
open TinyGrow.Datasets.Tests.IdxFiles

/// A provider that ignores what is installed on this machine, unless told otherwise, and never
/// downloads (the download tests point it at a local server).
let provider (systemFolders: (string * string) list) =
    let folders = dict systemFolders
    let systemFolder name = match folders.TryGetValue name with | true, f -> f | _ -> ""
    let variants = [ for v in MnistVariant.All -> MnistVariant (v.Name, v.Mean, v.Std, systemFolder v.Name, v.InstallHint, v.Addresses, v.Published) ]
    MnistDatasetProvider (downloader (), Variants = variants)

let load (p: MnistDatasetProvider) name root =
    p.Load (name, DatasetOptions (Name = name, Root = root, Download = false), torch.CPU, CancellationToken.None)

/// The message of the DatasetException that `f` raises.
let loadError p name root = datasetError (fun () -> (load p name root).Dispose ())

/// Inputs as the provider must produce them: (p/255 − mean)/std, in float32 like the provider.
let expectedInputs (count: int) (mean: float32) (std: float32) =
    Array.init (count * side * side) (fun k ->
        let p = pixel (k / (side * side)) (k / side % side) (k % side)
        (float32 p / 255.0f - mean) / std)

let checkSplit (pipeline: IInputPipeline) (split: DataSplit) (labels: byte[]) mean std =
    let n = int64 labels.Length
    Expect.equal split.Samples.shape [| n; 1L; 28L; 28L |] "samples [n,1,28,28]"
    Expect.equal split.Samples.dtype torch.uint8 "samples stored as uint8"
    use inputs = pipeline.Inputs split.Samples
    Expect.equal inputs.dtype torch.float32 "inputs float32"
    use generator = new torch.Generator (7UL)
    use augmented = pipeline.AugmentedInputs (split.Samples, generator)
    Expect.equal ((augmented - inputs).abs().max().item<float32> ()) 0.0f "no augmentation for MNIST (flips and shifts change digits)"
    Expect.equal split.Labels.shape [| n |] "labels [n]"
    Expect.equal split.Labels.dtype torch.int64 "labels int64"
    Expect.sequenceEqual (split.Labels.data<int64>().ToArray ()) (labels |> Array.map int64) "labels"
    let actual = inputs.data<float32>().ToArray ()
    let expected = expectedInputs labels.Length mean std
    let worst = Array.fold2 (fun m (a: float32) b -> max m (abs (a - b))) 0.0f actual expected
    Expect.isLessThan worst 1e-5f "every normalised pixel"
    // One known pixel spelled out: image 1, row 5, column 17.
    let p = pixel 1 5 17
    let value = inputs[1L, 0L, 5L, 17L].item<float32> ()
    // float32 with three roundings (x·(1/(255σ)) − μ/σ): a few units of 2⁻²⁴ relative.
    Expect.floatClose { absolute = 1e-6; relative = 5e-7 } (float value) ((float p / 255.0 - float mean) / float std) "pixel (1, 5, 17)"

let checkDataset (ds: LoadedDataset) name mean std =
    Expect.equal ds.Name name "name"
    Expect.equal ds.InputShape [| 1L; 28L; 28L |] "input shape"
    Expect.equal ds.Classes 10 "classes"
    checkSplit ds.Pipeline ds.Train trainLabels mean std
    checkSplit ds.Pipeline ds.Test testLabels mean std

let roundTrip =
    testList "round trip" [
        test "mnist, raw files in <Root>/mnist/" {
            use tmp = new TempFolder ()
            writeDataset (Path.Combine (tmp.Path, "mnist")) false
            use ds = load (provider []) "mnist" tmp.Path
            checkDataset ds "mnist" 0.1307f 0.3081f
        }
        test "fashion-mnist, gzip files in <Root>/fashion-mnist/" {
            use tmp = new TempFolder ()
            writeDataset (Path.Combine (tmp.Path, "fashion-mnist")) true
            use ds = load (provider []) "fashion-mnist" tmp.Path
            checkDataset ds "fashion-mnist" 0.2860f 0.3530f
        }
        test "files directly in <Root>/" {
            use tmp = new TempFolder ()
            writeDataset tmp.Path true
            use ds = load (provider []) "mnist" tmp.Path
            checkDataset ds "mnist" 0.1307f 0.3081f
        }
        test "the system folder is searched last" {
            use tmp = new TempFolder ()
            let system = Path.Combine (tmp.Path, "system")
            writeDataset system false
            use ds = load (provider [ "fashion-mnist", system ]) "fashion-mnist" (Path.Combine (tmp.Path, "empty"))
            checkDataset ds "fashion-mnist" 0.2860f 0.3530f
        }
        test "provenance: a file missing from <Root>/<name>/ means all four are read from the system copy, and Sources says so" {
            use tmp = new TempFolder ()
            let system = Path.Combine (tmp.Path, "system")
            writeDataset system true
            let root = Path.Combine (tmp.Path, "root")
            writeDataset (Path.Combine (root, "fashion-mnist")) false
            File.Delete (Path.Combine (root, "fashion-mnist", "t10k-labels-idx1-ubyte"))
            use ds = load (provider [ "fashion-mnist", system ]) "fashion-mnist" root
            let expected =
                [ for split, name in [ "train", "train-images-idx3-ubyte"; "train", "train-labels-idx1-ubyte"; "test", "t10k-images-idx3-ubyte"; "test", "t10k-labels-idx1-ubyte" ] ->
                    let path = Path.Combine (system, name + ".gz")
                    DataFile (split, path, FileInfo(path).Length, DataFileOrigin.System) ]
            Expect.sequenceEqual ds.Sources expected "the four .gz of the system copy, never mixed with Root's three"
            use fromRoot = load (provider [ "fashion-mnist", system ]) "fashion-mnist" system
            Expect.isTrue (fromRoot.Sources |> Seq.forall (fun f -> f.Origin = DataFileOrigin.Root)) "the same folder reached through Dataset:Root is Root"
        }
        test "<Root>/<name>/ wins over <Root>/" {
            use tmp = new TempFolder ()
            writeDataset (Path.Combine (tmp.Path, "mnist")) false
            // Corrupt files in <Root>/ would fail the load if they were chosen.
            for name in MnistFileLocator.FileNames do
                File.WriteAllBytes (Path.Combine (tmp.Path, name), [| 0uy |])
            use ds = load (provider []) "mnist" tmp.Path
            checkDataset ds "mnist" 0.1307f 0.3081f
        }
        test "gzip is recognised by its content, not its name" {
            use tmp = new TempFolder ()
            let folder = Path.Combine (tmp.Path, "mnist")
            writeDataset folder true
            for name in MnistFileLocator.FileNames do
                File.Move (Path.Combine (folder, name + ".gz"), Path.Combine (folder, name))
            use ds = load (provider []) "mnist" tmp.Path
            checkDataset ds "mnist" 0.1307f 0.3081f
        }
        test "dataset names are case-insensitive" {
            use tmp = new TempFolder ()
            writeDataset (Path.Combine (tmp.Path, "mnist")) false
            use ds = load (provider []) "MNIST" tmp.Path
            Expect.equal ds.Name "mnist" "canonical name"
        }
    ]

/// Writes a valid dataset in <Root>/mnist/, then replaces one file with `bytes`.
let withBrokenFile (fileName: string) (bytes: byte[]) (check: string -> string -> unit) =
    use tmp = new TempFolder ()
    let folder = Path.Combine (tmp.Path, "mnist")
    writeDataset folder false
    File.WriteAllBytes (Path.Combine (folder, fileName), bytes)
    check tmp.Path (loadError (provider []) "mnist" tmp.Path)

let errors =
    testList "errors name the file" [
        test "bad magic" {
            withBrokenFile "train-images-idx3-ubyte" (idxBytes 0x801 [| 3; 28; 28 |] (Array.zeroCreate (3 * 784))) (fun _ m ->
                expectContains m "train-images-idx3-ubyte"
                expectContains m "expected 0x00000803"
                expectContains m "found 0x00000801")
        }
        test "truncated data" {
            let bytes = imagesBytes 2
            withBrokenFile "t10k-images-idx3-ubyte" bytes[.. bytes.Length - 101] (fun _ m ->
                expectContains m "t10k-images-idx3-ubyte"
                expectContains m "truncated"
                expectContains m "expected 1568 bytes"
                expectContains m "found 1468")
        }
        test "a raw file that cannot be read beside its .gz: both named, with the fix" {
            let bytes = imagesBytes 2
            withBrokenFile "t10k-images-idx3-ubyte" bytes[.. bytes.Length - 101] (fun root m ->
                File.WriteAllBytes (Path.Combine (root, "mnist", "t10k-images-idx3-ubyte.gz"), gzip bytes)
                let m = loadError (provider []) "mnist" root
                expectContains m "truncated"
                expectContains m "t10k-images-idx3-ubyte.gz is beside it"
                expectContains m "delete "
                // Without the .gz beside it, the message is the reader's alone.
                File.Delete (Path.Combine (root, "mnist", "t10k-images-idx3-ubyte.gz"))
                Expect.isFalse ((loadError (provider []) "mnist" root).Contains ".gz is beside it") "no .gz: no mention of one")
        }
        test "a FIFO in a data file's place is refused by name at once, not opened (the open would wait for a writer for ever)" {
            use tmp = new TempFolder ()
            let folder = Path.Combine (tmp.Path, "mnist")
            writeDataset folder false
            let fifo = Path.Combine (folder, "t10k-labels-idx1-ubyte")
            File.Delete fifo
            makeFifo fifo
            let m = within 20.0 (fun () -> loadError (provider []) "mnist" tmp.Path)
            expectContains m "t10k-labels-idx1-ubyte"
            expectContains m "a FIFO"
            expectContains m "Fix: put the IDX file itself there"
        }
        test "Dataset:Root naming a file is refused as a file, not passed over for another copy" {
            use tmp = new TempFolder ()
            let file = Path.Combine (tmp.Path, "root.txt")
            File.WriteAllText (file, "not a folder")
            let m = loadError (provider []) "mnist" file
            expectContains m "Dataset:Root"
            expectContains m "a file"
        }
        test "truncated gzip data" {
            let bytes = imagesBytes 3
            withBrokenFile "train-images-idx3-ubyte" (gzip bytes[.. bytes.Length - 11]) (fun _ m ->
                expectContains m "train-images-idx3-ubyte"
                expectContains m "expected 2352 bytes"
                expectContains m "found 2342")
        }
        test "truncated header" {
            withBrokenFile "train-labels-idx1-ubyte" [| 0uy; 0uy; 8uy |] (fun _ m ->
                expectContains m "train-labels-idx1-ubyte"
                expectContains m "truncated")
        }
        test "a gzip header with no data: truncated, with the fix" {
            withBrokenFile "t10k-labels-idx1-ubyte" [| 0x1fuy; 0x8buy; 8uy; 0uy; 1uy; 2uy; 3uy; 4uy; 5uy; 6uy |] (fun _ m ->
                expectContains m "t10k-labels-idx1-ubyte"
                expectContains m "truncated"
                expectContains m "Download the file again")
        }
        test "corrupt gzip data (a deflate block of the reserved type) is called corrupt, not an unsupported compression method" {
            let broken = gzip (labelsBytes [| 1uy; 2uy; 3uy |])
            broken[10] <- 0xFFuy // the first deflate block's header: final, type 11 (reserved: invalid)
            withBrokenFile "t10k-labels-idx1-ubyte" broken (fun _ m ->
                expectContains m "t10k-labels-idx1-ubyte"
                expectContains m "corrupt gzip data"
                expectContains m "Download the file again")
        }
        test "gzip data that decompresses to more than its header says: the gzip data or the header is named, with the fix" {
            let bytes = imagesBytes 3
            withBrokenFile "train-images-idx3-ubyte" (gzip (Array.append bytes [| 7uy; 7uy |])) (fun _ m ->
                expectContains m "train-images-idx3-ubyte"
                expectContains m "the gzip data or the header is corrupt"
                expectContains m "Download the file again")
        }
        test "label count differs from image count" {
            withBrokenFile "train-labels-idx1-ubyte" (labelsBytes [| 1uy; 2uy |]) (fun _ m ->
                expectContains m "train-labels-idx1-ubyte"
                expectContains m "2 labels for 3 images")
        }
        test "label out of range" {
            withBrokenFile "t10k-labels-idx1-ubyte" (labelsBytes [| 4uy; 10uy |]) (fun _ m ->
                expectContains m "t10k-labels-idx1-ubyte"
                expectContains m "label 10 at index 1")
        }
        test "a header whose dimensions overflow is a dataset error naming the file, not a raw exception" {
            // 2^63 wraps to a negative size, 2^64 to zero.
            for dims in [ [| 2097152; 2097152; 2097152 |]; [| 4194304; 2097152; 2097152 |] ] do
                withBrokenFile "train-images-idx3-ubyte" (idxBytes 0x803 dims (Array.zeroCreate 64)) (fun _ m ->
                    expectContains m "train-images-idx3-ubyte"
                    expectContains m "overflow")
        }
        test "images that are not 28×28" {
            withBrokenFile "train-images-idx3-ubyte" (idxBytes 0x803 [| 3; 32; 32 |] (Array.zeroCreate (3 * 1024))) (fun _ m ->
                expectContains m "train-images-idx3-ubyte"
                expectContains m "32×32")
        }
        test "missing files: the folders searched and the fix" {
            use tmp = new TempFolder ()
            let m = loadError (provider []) "mnist" tmp.Path
            for name in MnistFileLocator.FileNames do expectContains m name
            expectContains m (Path.Combine (tmp.Path, "mnist"))
            expectContains m "Fix: put the four files in"
        }
        test "missing fashion-mnist: the fix names the Debian package" {
            use tmp = new TempFolder ()
            let system = Path.Combine (tmp.Path, "not-installed")
            let m = loadError (provider [ "fashion-mnist", system ]) "fashion-mnist" tmp.Path
            expectContains m "train-images-idx3-ubyte"
            expectContains m system
            expectContains m "apt-get install dataset-fashion-mnist"
        }
        test "one missing file is named" {
            use tmp = new TempFolder ()
            let folder = Path.Combine (tmp.Path, "mnist")
            writeDataset folder false
            File.Delete (Path.Combine (folder, "t10k-labels-idx1-ubyte"))
            let m = loadError (provider []) "mnist" tmp.Path
            expectContains m "missing t10k-labels-idx1-ubyte"
        }
        test "unknown dataset name" {
            use tmp = new TempFolder ()
            let m = loadError (provider []) "cifar10" tmp.Path
            expectContains m "cifar10"
            expectContains m "fashion-mnist"
        }
    ]

let plugin =
    testList "plugin" [
        test "module registers the provider for both names" {
            let m = MnistPluginModule () :> IPluginModule
            Expect.equal m.ContractVersion Contract.Version "contract version"
            let services = Microsoft.Extensions.DependencyInjection.ServiceCollection ()
            m.Register services
            let d = Seq.exactlyOne services
            Expect.equal d.ServiceType typeof<IDatasetProvider> "service type"
            Expect.equal d.ImplementationType typeof<MnistDatasetProvider> "implementation type"
            Expect.sequenceEqual (provider [] :> IDatasetProvider).Names [ "mnist"; "fashion-mnist" ] "names"
        }
    ]

// Real data from the Debian package dataset-fashion-mnist, when installed: headers and labels only (fast).
let debianFolder = "/usr/share/datasets/fashion-mnist"

let debian =
    let trainImages = Path.Combine (debianFolder, "train-images-idx3-ubyte.gz")
    testList "debian fashion-mnist" [
        test "train images header: 60000×28×28" {
            if not (File.Exists trainImages) then skiptest "dataset-fashion-mnist is not installed"
            let h = IdxReader.ReadHeader trainImages
            Expect.equal h.Magic IdxReader.ImagesMagic "images magic"
            Expect.sequenceEqual h.Dimensions [ 60000; 28; 28 ] "dimensions"
        }
        test "train labels: 60000, balanced over 10 classes" {
            if not (File.Exists trainImages) then skiptest "dataset-fashion-mnist is not installed"
            let labels = IdxReader.ReadLabels (Path.Combine (debianFolder, "train-labels-idx1-ubyte.gz"), 10)
            Expect.equal labels.Length 60000 "count"
            Expect.allEqual (labels |> Array.countBy id |> Array.map snd) 6000 "6000 per class"
        }
        // The whole load takes about 0.6 s here; it checks the normalisation constants on real data.
        test "full load: 60000 + 10000 images, train inputs with mean ≈ 0 and std ≈ 1" {
            if not (File.Exists trainImages) then skiptest "dataset-fashion-mnist is not installed"
            use ds = load (provider [ "fashion-mnist", debianFolder ]) "fashion-mnist" (Path.Combine (Path.GetTempPath (), "tinygrow-no-such-root"))
            Expect.equal ds.Train.Samples.shape [| 60000L; 1L; 28L; 28L |] "train samples"
            Expect.equal ds.Test.Samples.shape [| 10000L; 1L; 28L; 28L |] "test samples"
            Expect.equal ds.Test.Count 10000L "test labels"
            use inputs = ds.Pipeline.Inputs ds.Train.Samples
            use mean = inputs.mean ()
            use std = inputs.std ()
            Expect.floatClose { absolute = 0.005; relative = 0.0 } (float (mean.item<float32> ())) 0.0 "mean"
            Expect.floatClose { absolute = 0.005; relative = 0.0 } (float (std.item<float32> ())) 1.0 "std"
        }
    ]

let tests = testList "mnist" [ roundTrip; errors; plugin; debian ]
