/// A clean build's output loads TorchSharp (libstdc++ compatibility applied when needed) and runs
/// linear algebra: if the natives did not load, every other test would fail with a misleading error.
module TinyGrow.Tests.TorchLoadTests

open Expecto
open TorchSharp
open TinyGrow.Tests.TestUtil

let tests =
    testList "torchsharp loads" [
        test "solve of a known system" {
            use a = mat 2L 2L [| 2.0; 1.0; 1.0; 3.0 |]
            use b = mat 2L 1L [| 3.0; 5.0 |]
            use x = torch.linalg.solve (a, b)
            // 2x + y = 3, x + 3y = 5  →  x = 0.8, y = 1.4
            Expect.floatClose Accuracy.veryHigh (x[0L, 0L].item<float> ()) 0.8 "x"
            Expect.floatClose Accuracy.veryHigh (x[1L, 0L].item<float> ()) 1.4 "y"
        }
        test "eigh of a symmetric matrix" {
            use a = mat 2L 2L [| 2.0; 1.0; 1.0; 2.0 |]
            let struct (l, _) = torch.linalg.eigh a
            Expect.sequenceEqual (l.data<float>().ToArray () |> Array.map (fun v -> System.Math.Round (v, 12))) [| 1.0; 3.0 |] "eigenvalues 1 and 3"
        }
    ]
