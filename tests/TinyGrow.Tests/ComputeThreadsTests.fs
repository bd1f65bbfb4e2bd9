/// Training:Threads: the count a run uses (the policy is measured in docs/notebook/2026-11-30-cpu-threads.md).
module TinyGrow.Tests.ComputeThreadsTests

open Expecto
open TorchSharp
open TinyGrow.Core
open TinyGrow.Tests.Fixtures

let private f32 = torch.ScalarType.Float32

let tests =
    testList "compute threads" [
        test "Training:Threads: a number is taken as given; auto is one thread for dense networks on the CPU, libtorch's default otherwise" {
            Expect.equal (fst (ComputeThreads.choose 3 true true 2)) 3 "a requested count wins, even for a dense network"
            Expect.equal (fst (ComputeThreads.choose 0 true true 8)) 1 "auto, dense, CPU"
            Expect.equal (fst (ComputeThreads.choose 0 true false 8)) 8 "auto, with a convolution, CPU"
            Expect.equal (fst (ComputeThreads.choose 0 false true 8)) 8 "auto on a GPU"
            use dense = mlp 11L f32 4 [ 2; 3 ] "tanh" 2
            Expect.isTrue (ComputeThreads.denseOnly dense) "an MLP is dense only"
            use conv = ConvTests.cnn 12L f32 [| 1L; 6L; 6L |] [ ConvTests.conv 2 3 1 1 1 false false "relu" "none"; ConvTests.denseSpec 2 ] "gap" 2
            Expect.isFalse (ComputeThreads.denseOnly conv) "a CNN is not"
        }
    ]
