/// The image pipeline: normalisation against its closed form in float64, and per-sample random
/// crops and flips against a brute-force search over every window of the padded image.
module TinyGrow.Datasets.Tests.AugmentationTests

open Expecto
open TorchSharp
open TinyGrow.Datasets.Images

let mean = [| 0.4914f; 0.4822f; 0.4465f |]
let std = [| 0.2470f; 0.2435f; 0.2616f |]

let pipeline padding flip = new ImagePipeline (mean, std, ImageAugmentation (padding, flip), torch.CPU)

/// Whether two tensors have the same shape and elements.
let same (a: torch.Tensor) (b: torch.Tensor) : bool =
    a.shape = b.shape && a.dtype = b.dtype && (use d = a.ne b in use n = d.sum () in n.item<int64> () = 0L)

/// Random uint8 images [n, 3, h, w] with values 1..255, so that the zero padding is recognisable
/// and windows at different offsets differ.
let images (seed: uint64) (n: int64) (h: int64) (w: int64) =
    use g = new torch.Generator (seed)
    torch.randint (1L, 256L, [| n; 3L; h; w |], dtype = torch.uint8, generator = g)

/// For each sample: (row offset, column offset, flipped) of the window of the zero-padded image
/// that `out` equals, found by trying all of them; None when no window matches.
let windows (x: torch.Tensor) (out: torch.Tensor) (padding: int64) =
    let h, w = x.shape[2], x.shape[3]
    use padded = torch.nn.functional.pad (x, [| padding; padding; padding; padding |])
    [ for i in 0L .. x.shape[0] - 1L ->
        use target = out[i]
        [ for dy in 0L .. 2L * padding do
            for dx in 0L .. 2L * padding do
                for flipped in [ false; true ] do
                    use window = padded[i].narrow(1L, dy, h).narrow (2L, dx, w)
                    use candidate = if flipped then window.flip 2L else window.alias ()
                    if same candidate target then yield (dy, dx, flipped) ]
        |> List.tryHead ]

let batchesWith (seed: uint64) (p: ImagePipeline) (x: torch.Tensor) =
    use g = new torch.Generator (seed)
    [ for _ in 1 .. 3 -> p.AugmentedInputs (x, g) ]

let tests =
    testList "image pipeline" [
        test "normalisation: (x/255 − mean_c)/std_c per channel, against float64" {
            use p = pipeline 4 true
            use x = images 1UL 4L 5L 6L
            use inputs = p.Inputs x
            Expect.equal inputs.shape [| 4L; 3L; 5L; 6L |] "shape"
            Expect.equal inputs.dtype torch.float32 "float32"
            use m = (torch.tensor (mean |> Array.map float)).reshape (3L, 1L, 1L)
            use s = (torch.tensor (std |> Array.map float)).reshape (3L, 1L, 1L)
            use expected = (x.to_type(torch.float64) / 255.0 - m) / s
            use error = (inputs.to_type torch.float64 - expected).abs().max ()
            // float32 with three roundings on values up to ~2: a few units of 2⁻²⁴ · 2.
            Expect.isLessThan (error.item<float> ()) 1e-6 "max |error|"
        }
        test "shapes: augmented batches keep [b, C, H, W] and float32; non-square images too" {
            use p = pipeline 4 true
            use x = images 2UL 7L 12L 20L
            use g = new torch.Generator (3UL)
            use out = p.AugmentedInputs (x, g)
            Expect.equal out.shape [| 7L; 3L; 12L; 20L |] "shape"
            Expect.equal out.dtype torch.float32 "dtype"
        }
        test "a crop is a window of the zero-padded image at an offset in [0, 2p]; offsets differ per sample" {
            use p = pipeline 4 false
            use x = images 4UL 64L 10L 12L
            use g = new torch.Generator (5UL)
            use out = p.Crop (x, g)
            let found = windows x out 4L
            Expect.all found Option.isSome "every sample is a window of its padded image"
            let offsets = found |> List.choose id
            Expect.all offsets (fun (_, _, flipped) -> not flipped) "no flips when flips are off"
            Expect.isGreaterThan (offsets |> List.distinct |> List.length) 20 "offsets drawn per sample (64 samples, 81 offsets)"
            Expect.equal (offsets |> List.map (fun (dy, _, _) -> dy) |> List.distinct |> List.length) 9 "all 9 row offsets occur"
        }
        test "normalised augmented inputs are the normalised crop (the padding is black, not the mean)" {
            use p = pipeline 4 true
            use x = images 6UL 8L 8L 8L
            use g1 = new torch.Generator (9UL)
            use g2 = new torch.Generator (9UL)
            use crop = p.Crop (x, g1)
            use viaCrop = p.Inputs crop
            use out = p.AugmentedInputs (x, g2)
            Expect.isTrue (same viaCrop out) "same draws, same result"
            use padValue = out.min ()
            Expect.floatClose Accuracy.medium (float (padValue.item<float32> ())) (float (-0.4914f / 0.2470f)) "black border normalises to −mean/std"
        }
        test "flips are decided per sample, with frequency ½" {
            use p = pipeline 0 true
            use x = images 7UL 2000L 4L 5L
            use g = new torch.Generator (11UL)
            use out = p.Crop (x, g)
            let found = windows x out 0L
            Expect.all found Option.isSome "every sample is itself or its mirror"
            let flips = found |> List.choose id |> List.map (fun (_, _, f) -> f)
            let rate = float (flips |> List.filter id |> List.length) / 2000.0
            // Binomial(2000, ½): σ = 0.011; 4σ ≈ 0.045.
            Expect.isLessThan (abs (rate - 0.5)) 0.045 $"flip rate {rate}"
            for start in 0 .. 128 .. 1999 - 128 do
                let batch = flips[start .. start + 127]
                Expect.isTrue (List.contains true batch && List.contains false batch) "within a batch of 128, some flipped and some not"
        }
        test "crop and flip together: a mirrored window of the padded image" {
            use p = pipeline 2 true
            use x = images 8UL 200L 6L 6L
            use g = new torch.Generator (13UL)
            use out = p.Crop (x, g)
            let found = windows x out 2L |> List.choose id
            Expect.equal found.Length 200 "every sample found"
            Expect.isTrue (found |> List.exists (fun (dy, dx, f) -> f && (dy, dx) <> (2L, 2L))) "some shifted and flipped"
        }
        test "the same seed gives the same batches; another seed other batches" {
            use p = pipeline 4 true
            use x = images 10UL 32L 8L 8L
            let a = batchesWith 21UL p x
            let b = batchesWith 21UL p x
            let c = batchesWith 22UL p x
            Expect.isTrue (List.forall2 (fun (u: torch.Tensor) v -> same u v) a b) "same seed"
            Expect.isFalse (same a[0] c[0]) "another seed"
            Expect.isFalse (same a[0] a[1]) "successive batches differ"
            for t in a @ b @ c do t.Dispose ()
        }
        test "augmentation off: augmented inputs are the plain inputs and draw nothing" {
            use p = new ImagePipeline (mean, std, ImageAugmentation.From (TinyGrow.Abstractions.DatasetOptions (Augment = false)), torch.CPU)
            use x = images 12UL 4L 8L 8L
            use g = new torch.Generator (1UL)
            use before = g.get_state ()
            use out = p.AugmentedInputs (x, g)
            use plain = p.Inputs x
            Expect.isTrue (same out plain) "unchanged"
            use after = g.get_state ()
            Expect.isTrue (same before after) "generator untouched"
        }
        test "the description for the run's log says what training batches get" {
            Expect.equal (string (pipeline 0 false)) "inputs normalised per channel, no augmentation" "none"
            Expect.equal (string (pipeline 4 true)) "inputs normalised per channel; training batches randomly cropped (zero padding 4) and flipped left–right at random, per sample" "both"
            Expect.equal (string (pipeline 0 true)) "inputs normalised per channel; training batches flipped left–right at random, per sample" "flip only"
        }
        test "bad input: wrong rank or channel count, and bad constants, are refused by name" {
            use p = pipeline 4 true
            use flat = torch.zeros ([| 2L; 3072L |], dtype = torch.uint8)
            let e = Expect.throwsT<System.ArgumentException> (fun () -> p.Inputs flat |> ignore)
            use gray = torch.zeros ([| 2L; 1L; 32L; 32L |], dtype = torch.uint8)
            Expect.throwsT<System.ArgumentException> (fun () -> p.Inputs gray |> ignore) "1 channel for a 3-channel pipeline"
            // float32 samples would be normalised in place (to(float32) returns them as they are).
            use floats = torch.zeros ([| 2L; 3L; 8L; 8L |])
            Expect.throwsT<System.ArgumentException> (fun () -> p.Inputs floats |> ignore) "float32 samples refused"
            Expect.equal (floats.abs().sum().item<float32> ()) 0.0f "and left untouched"
            Expect.throwsT<System.ArgumentException> (fun () -> new ImagePipeline ([| 0.5f |], [| 0.0f |], ImageAugmentation.None, torch.CPU) |> ignore) "zero std"
            Expect.throwsT<System.ArgumentException> (fun () -> new ImagePipeline ([| 0.5f; 0.5f |], [| 0.2f |], ImageAugmentation.None, torch.CPU) |> ignore) "one std for two means"
        }
    ]
