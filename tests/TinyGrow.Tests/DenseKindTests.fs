/// The dense layer kind's own checks and layout: spec validation, growth appends rows/columns,
/// the slope σ′(0) it reports.
module TinyGrow.Tests.DenseKindTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Tests.TestUtil
open TinyGrow.Tests.Fixtures

let tests =
    testList "dense kind" [
        test "validate: known activations pass, an unknown one is named with the fix" {
            for a in [ "relu"; "tanh"; "selu"; "gelu"; "identity" ] do
                Expect.isEmpty (dense.Validate (spec 1 4 a true)) $"{a} is valid"
            let problems = dense.Validate (spec 1 4 "sigmoid" true)
            Expect.equal problems.Count 1 "one problem"
            Expect.stringContains problems[0] "'sigmoid'" "names the value"
            Expect.stringContains problems[0] "tanh" "lists the known ones"
        }

        test "σ′(0⁺) per activation" {
            let slope a =
                use g = new torch.Generator (1UL)
                use l = dense.Create (spec 2 4 a true, 3, torch.CPU, f64, g)
                l.ActivationSlopeAtZero
            Expect.equal (slope "relu") 1.0 "relu"
            Expect.equal (slope "tanh") 1.0 "tanh"
            Expect.floatClose Accuracy.veryHigh (slope "selu") 1.0507009873554805 "selu: its scale λ"
            Expect.equal (slope "gelu") 0.5 "gelu: Φ(0)"
        }

        test "growth appends: old weights keep their indices, new rows and columns are the given ones" {
            use g = new torch.Generator (2UL)
            use l = dense.Create (spec 3 8 "tanh" true, 4, torch.CPU, f64, g)
            let w0, b0 = weightAndBias l
            use w0 = w0.clone ()
            use b0 = b0.clone ()
            use fanIn = randn 3L 2L 5L // 2 new neurons, 4 inputs + bias
            l.Load (l.GrowOutputs fanIn)
            let w1, b1 = weightAndBias l
            Expect.equal w1.shape [| 5L; 4L |] "two rows more"
            Expect.isTrue (identical (w1.narrow (0L, 0L, 3L)) w0) "old rows unchanged"
            Expect.isTrue (identical (w1.narrow (0L, 3L, 2L)) (fanIn.narrow (1L, 0L, 4L))) "new rows = fan-in weights"
            Expect.isTrue (identical (b1.narrow (0L, 3L, 2L)) (fanIn.narrow(1L, 4L, 1L).flatten ())) "new biases = last column"
            Expect.isTrue (identical (b1.narrow (0L, 0L, 3L)) b0) "old biases unchanged"
            use fanOut = randn 4L 5L 2L
            l.Load (l.GrowInputs fanOut)
            let w2, _ = weightAndBias l
            Expect.equal w2.shape [| 5L; 6L |] "two columns more"
            Expect.isTrue (identical (w2.narrow (1L, 4L, 2L)) fanOut) "new columns = fan-out"
        }
    ]
