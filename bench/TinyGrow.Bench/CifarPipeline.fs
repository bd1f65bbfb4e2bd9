/// `make bench ARGS=cifar-pipeline`: batches per second of the CIFAR-10 pipeline (index_select of
/// uint8 samples + per-sample crop/flip + normalisation) on this CPU, beside the cost of one training
/// step of a small CNN and a per-sample baseline, all in this process, alternated, medians; and the
/// memory the dataset holds. The data are synthetic CIFAR-10 files in the official layout (CIFAR
/// cannot be downloaded here), full size, written once to a temporary folder.
module TinyGrow.Bench.CifarPipeline

open System
open System.Diagnostics
open System.IO
open System.Threading
open Microsoft.Extensions.Logging.Abstractions
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Datasets.Cifar
open TinyGrow.Datasets.Downloads
open TinyGrow.Datasets.Images
open TinyGrow.Bench.Measure

let private batchSize = 128L

/// Six files of 10,000 random records each (labels 0–9), as the official archive unpacks.
let private writeSynthetic (root: string) =
    let folder = Path.Combine (root, "cifar10", "cifar-10-batches-bin")
    if not (File.Exists (Path.Combine (folder, "test_batch.bin"))) then
        Directory.CreateDirectory folder |> ignore
        let rng = Random 1
        for name in [ for i in 1 .. 5 -> $"data_batch_{i}.bin" ] @ [ "test_batch.bin" ] do
            let bytes = Array.zeroCreate<byte> (10_000 * 3073)
            rng.NextBytes bytes
            for r in 0 .. 9_999 do bytes[r * 3073] <- byte (rng.Next 10)
            File.WriteAllBytes (Path.Combine (folder, name), bytes)

/// Resident and peak resident memory of this process, MB.
let private rss () =
    use p = Process.GetCurrentProcess ()
    p.Refresh ()
    float p.WorkingSet64 / 1e6, float p.PeakWorkingSet64 / 1e6

/// What a per-sample transform pipeline does (one small tensor per image, then a stack): the
/// baseline the batched gather replaces. Same draws: offsets and flips from the generator.
let private perSample (samples: torch.Tensor) (generator: torch.Generator) (pipeline: ImagePipeline) =
    use scope = torch.NewDisposeScope ()
    let b = samples.shape[0]
    let images =
        [| for i in 0L .. b - 1L ->
            let padded = torch.nn.functional.pad (samples[i], [| 4L; 4L; 4L; 4L |])
            let dy = torch.randint(0L, 9L, [| 1L |], generator = generator).item<int64> ()
            let dx = torch.randint(0L, 9L, [| 1L |], generator = generator).item<int64> ()
            let window = padded.narrow(1L, dy, 32L).narrow (2L, dx, 32L)
            if torch.randint(0L, 2L, [| 1L |], generator = generator).item<int64> () = 1L then window.flip 2L else window |]
    let result = pipeline.Inputs (torch.stack images)
    scope.MoveToOuter result

type private Layer = torch.nn.Module<torch.Tensor, torch.Tensor>

let private smallCnn () : torch.nn.Module<torch.Tensor, torch.Tensor> =
    let layers : (string * Layer)[] =
        [| "conv1", torch.nn.Conv2d (3L, 16L, 3L, padding = 1L)
           "relu1", torch.nn.ReLU ()
           "pool1", torch.nn.MaxPool2d 2L
           "conv2", torch.nn.Conv2d (16L, 32L, 3L, padding = 1L)
           "relu2", torch.nn.ReLU ()
           "pool2", torch.nn.MaxPool2d 2L
           "flatten", torch.nn.Flatten ()
           "fc", torch.nn.Linear (32L * 8L * 8L, 10L) |]
    torch.nn.Sequential layers


/// TorchSharp's own reader on the same files, for comparison: torchvision.datasets.CIFAR10 (one
/// float32 tensor per image, x/256) and its DataLoader (stacks per-sample tensors), no augmentation.
let private torchVisionBaseline (root: string) (oursMs: float) =
    // It reads <root>/CIFAR10/cifar-10-batches-bin/: point that name at our folder.
    let link = Path.Combine (root, "CIFAR10")
    if not (Directory.Exists link) then Directory.CreateSymbolicLink (link, Path.Combine (root, "cifar10")) |> ignore
    GC.Collect ()
    let before = fst (rss ())
    let clock = Stopwatch.StartNew ()
    use dataset = torchvision.datasets.CIFAR10 (root, true)
    let loadSeconds = clock.Elapsed.TotalSeconds
    GC.Collect ()
    let after = fst (rss ())
    use loader = torch.utils.data.DataLoader (dataset, 128, shuffle = true)
    let timeBatches count =
        let sw = Stopwatch.StartNew ()
        use e = loader.GetEnumerator ()
        let mutable k = 0
        while k < count && e.MoveNext () do
            for t in e.Current.Values do t.Dispose ()
            k <- k + 1
        1000.0 * sw.Elapsed.TotalSeconds / float k
    timeBatches 5 |> ignore
    let perBatch = median [ for _ in 1 .. 3 -> timeBatches 40 ]
    printfn ""
    printfn "TorchSharp's torchvision.datasets.CIFAR10 on the same files: training split (50,000) loaded in %.2f s, resident +%.0f MB;" loadSeconds (after - before)
    printfn "its DataLoader: %.2f ms per batch of 128 (no augmentation), %.1f× our normalise-only pipeline" perBatch (perBatch / oursMs)

let run () =
    let root = Path.Combine (Path.GetTempPath (), "tinygrow-bench-cifar")
    writeSynthetic root
    // libtorch's own pages (hundreds of MB of code) count in the resident size once touched:
    // touch them before the "before" reading so that the difference is the dataset's.
    do
        use warm = torch.ones (1000L, 1000L)
        use _ = warm.index_select(0L, torch.arange 10L).``to``(torch.float32).mul_ ((2.0f).ToScalar ())
        ()
    GC.Collect ()
    let rssBefore = rss ()
    let clock = Stopwatch.StartNew ()
    use downloader = new DatasetDownloader (NullLogger<DatasetDownloader>.Instance)
    let provider = CifarDatasetProvider downloader :> IDatasetProvider
    use data = provider.Load ("cifar10", DatasetOptions (Name = "cifar10", Root = root, Download = false), torch.CPU, CancellationToken.None)
    let loadSeconds = clock.Elapsed.TotalSeconds
    GC.Collect ()
    GC.WaitForPendingFinalizers ()
    GC.Collect ()
    let rssAfter = rss ()
    let bytesOf (t: torch.Tensor) = float (t.NumberOfElements * t.ElementSize) / 1e6
    let held = bytesOf data.Train.Samples + bytesOf data.Train.Labels + bytesOf data.Test.Samples + bytesOf data.Test.Labels
    let asFloat = 4.0 * (bytesOf data.Train.Samples + bytesOf data.Test.Samples) + bytesOf data.Train.Labels + bytesOf data.Test.Labels
    printfn "Synthetic CIFAR-10 (50,000 + 10,000 images) loaded in %.2f s" loadSeconds
    printfn "Memory: dataset tensors %.1f MB (uint8 pixels + int64 labels; as float32 inputs they would be %.1f MB)" held asFloat
    printfn "Process: resident %.0f MB before load, %.0f MB after (peak %.0f MB); managed heap %.0f MB"
        (fst rssBefore) (fst rssAfter) (snd rssAfter) (float (GC.GetTotalMemory false) / 1e6)

    let pipeline = data.Pipeline :?> ImagePipeline
    let n = data.Train.Count
    use generator = new torch.Generator (1UL)
    use order = torch.randperm (n, generator = generator)
    let cnn = smallCnn ()
    let optimizer = torch.optim.SGD (cnn.parameters (), 0.01, momentum = 0.9)
    let mutable cursor = 0L
    let nextSamples () =
        if cursor + batchSize > n then cursor <- 0L
        use idx = order.narrow (0L, cursor, batchSize)
        cursor <- cursor + batchSize
        data.Train.Samples.index_select (0L, idx), data.Train.Labels.index_select (0L, idx)
    let plain () =
        use scope = torch.NewDisposeScope ()
        let s, _ = nextSamples ()
        pipeline.Inputs s |> ignore
    let augmented () =
        use scope = torch.NewDisposeScope ()
        let s, _ = nextSamples ()
        pipeline.AugmentedInputs (s, generator) |> ignore
    let baseline () =
        use scope = torch.NewDisposeScope ()
        let s, _ = nextSamples ()
        perSample s generator pipeline |> ignore
    let trainStep () =
        use scope = torch.NewDisposeScope ()
        let s, y = nextSamples ()
        let x = pipeline.AugmentedInputs (s, generator)
        optimizer.zero_grad ()
        let loss = torch.nn.functional.cross_entropy (cnn.forward x, y)
        loss.backward ()
        optimizer.step () |> ignore
    let cnnStepOnly =
        // The step alone, on one prepared batch, so that its cost excludes the pipeline.
        let s, y = nextSamples ()
        let x = pipeline.AugmentedInputs (s, generator)
        fun () ->
            use scope = torch.NewDisposeScope ()
            optimizer.zero_grad ()
            let loss = torch.nn.functional.cross_entropy (cnn.forward x, y)
            loss.backward ()
            optimizer.step () |> ignore
    let cases =
        [ "pipeline, normalise only", plain
          "pipeline, crop + flip + normalise", augmented
          "per-sample crop/flip + stack (baseline)", baseline
          "small CNN training step (batch ready)", cnnStepOnly
          "pipeline + CNN step", trainStep ]
    let timeMs (f: unit -> unit) (count: int) =
        let sw = Stopwatch.StartNew ()
        for _ in 1 .. count do f ()
        1000.0 * sw.Elapsed.TotalSeconds / float count
    for _, f in cases do timeMs f 5 |> ignore // warm-up
    let rounds = [ for _ in 1 .. 3 -> [ for name, f in cases -> name, timeMs f 40 ] ]
    let ms name = median [ for r in rounds -> r |> List.find (fst >> (=) name) |> snd ]
    printfn ""
    printfn "Batch %d, %d threads, medians of 3 alternated rounds of 40 batches:" batchSize (torch.get_num_threads ())
    printfn ""
    printfn "| step | ms per batch | batches/s | vs CNN step |"
    printfn "|---|---:|---:|---:|"
    let step = ms "small CNN training step (batch ready)"
    for name, _ in cases do
        let t = ms name
        printfn "| %s | %.2f | %.0f | %.2f× |" name t (1000.0 / t) (t / step)
    printfn ""
    printfn "Augmented pipeline / per-sample baseline: %.2f× the time" (ms "pipeline, crop + flip + normalise" / ms "per-sample crop/flip + stack (baseline)")
    torchVisionBaseline root (ms "pipeline, normalise only")
    0
