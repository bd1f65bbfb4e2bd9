/// Dataset:TrainSamples / TestSamples (LoadedDataset.WithLimits): the first N samples of a split, as the
/// host's run and the bench both cut them.
module TinyGrow.Datasets.Tests.LimitsTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions

/// A dataset of `train` and `test` samples whose sample i holds the value i (labels i mod 10).
let private numbered (train: int64) (test: int64) =
    let split (n: int64) =
        let values = (torch.tensor (Array.init (int n) byte)).reshape (n, 1L)
        let labels = torch.tensor (Array.init (int n) (fun i -> int64 (i % 10)))
        new DataSplit (values, labels)
    new LoadedDataset ("numbered", split train, split test, [| 1L |], 10, AugmentationTests.pipeline 0 false)

let tests =
    testList "dataset limits" [
        test "TrainSamples keeps the first N training samples and their labels; the test split is the same object" {
            use data = numbered 20L 7L
            let test = data.Test
            use cut = data.WithLimits (DatasetOptions (TrainSamples = 6))
            Expect.equal cut.Train.Count 6L "6 training samples"
            Expect.equal (cut.Train.Samples.flatten().data<byte>().ToArray ()) [| 0uy .. 5uy |] "the first six, in order"
            Expect.equal (cut.Train.Labels.data<int64>().ToArray ()) [| 0L .. 5L |] "their labels"
            Expect.isTrue (obj.ReferenceEquals (cut.Test, test)) "the test split untouched"
        }

        test "TestSamples cuts the test split; no limit, or a limit at or above the count, is the dataset itself" {
            use data = numbered 20L 7L
            use cut = data.WithLimits (DatasetOptions (TestSamples = 3))
            Expect.equal (cut.Train.Count, cut.Test.Count) (20L, 3L) "test cut to 3"
            use whole = numbered 20L 7L
            for options in [ DatasetOptions (); DatasetOptions (TrainSamples = 20, TestSamples = 7); DatasetOptions (TrainSamples = 500) ] do
                Expect.isTrue (obj.ReferenceEquals (whole.WithLimits options, whole)) $"train {options.TrainSamples}, test {options.TestSamples}: unchanged"
        }
    ]
