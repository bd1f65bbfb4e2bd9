/// The dense layer kind's own checks and layout: spec validation, growth appends rows/columns,
/// the slope σ′(0) it reports; the blocks that hold dense layers build each with its spec's kind.
module TinyGrow.Tests.DenseKindTests

open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Growth.Conv
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

        test "mlp and cnn blocks build each layer of their dense part with the kind its spec names (a plugin's), the output layer with dense" {
            let built = ResizeArray<IGrowableLayer> ()
            // A plugin's dense-shaped kind: the shipped dense under another name, recording what it builds.
            let other =
                { new ILayerKind with
                    member _.Name = "other-dense"
                    member _.Validate spec = dense.Validate spec
                    member _.Create (spec, inputWidth, device, dtype, generator) =
                        let layer = dense.Create (spec, inputWidth, device, dtype, generator)
                        built.Add layer
                        layer }
            let kinds = readOnlyDict [ "dense", dense; "other-dense", other; "conv", ConvKind () :> ILayerKind ]
            let otherSpec = LayerSpec (Kind = "other-dense", Width = 3, MaxWidth = 8, Activation = "relu")
            use g = new torch.Generator (3UL)

            let mlpSpec = BlockSpec (Kind = "mlp", Layers = ResizeArray [ otherSpec; spec 2 8 "tanh" true ], IsOutput = true, OutputBias = true)
            Expect.isEmpty (mlpKind.Validate (mlpSpec, [| 4L |], "Model")) "an mlp accepts a plugin's kind"
            use mlp = new Network ([| mlpKind.Create (mlpSpec, BlockContext ([| 4L |], 2, kinds, torch.CPU, f64, g, "mlp")) |])
            Expect.equal built.Count 1 "the plugin's kind built one layer of the mlp"
            Expect.isTrue (obj.ReferenceEquals (layerOf mlp 0, built[0])) "the mlp's layer 0 is the one it built"
            Expect.equal [ for l in layersOf mlp -> l.OutputWidth ] [ 3; 2; 2 ] "then a dense hidden layer and the dense output layer"
            let withConv = BlockSpec (Kind = "mlp", Layers = ResizeArray [ spec 2 8 "tanh" true; LayerSpec (Kind = "conv", Width = 2) ], IsOutput = true)
            Expect.exists (mlpKind.Validate (withConv, [| 4L |], "Model")) (fun p -> p.Contains "Model:Layers:1:Kind = 'conv'") "a conv inside an mlp is still refused, by key"

            built.Clear ()
            let cnnKind = CnnBlockKind () :> IBlockKind
            let convSpec = LayerSpec (Kind = "conv", Width = 2, MaxWidth = 4, Activation = "relu", Kernel = 3)
            let cnnSpec = BlockSpec (Kind = "cnn", Layers = ResizeArray [ convSpec; otherSpec ], Head = "gap", IsOutput = true, OutputBias = true)
            Expect.isEmpty (cnnKind.Validate (cnnSpec, [| 1L; 6L; 6L |], "Model")) "a cnn accepts a plugin's kind after its convs"
            use cnn = new Network ([| cnnKind.Create (cnnSpec, BlockContext ([| 1L; 6L; 6L |], 2, kinds, torch.CPU, f64, g, "cnn")) |])
            Expect.equal built.Count 1 "the plugin's kind built the cnn's dense layer"
            Expect.isTrue (cnn.Junctions |> Array.exists (fun j -> obj.ReferenceEquals (j.A, built[0]))) "it is the A of a junction of the cnn"
        }
    ]
