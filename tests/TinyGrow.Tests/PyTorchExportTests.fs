/// PyTorch export (issue 9 item 4): model.pt + model.json + tinygrow_model.py, loaded by Python
/// torch (Debian's python3-torch), compute what TinyGrow's eval-mode forward computes on the same
/// inputs: an MLP (tanh, relu, selu, gelu, a layer without bias), CNNs (BatchNorm, max/avg pools,
/// GAP and flatten heads, stride, dilation, conv bias) and ResNet-18 at 1/64 on 16×16 images.
/// Tolerance: float32, max |Δ| ≤ 1e-5 · max(1, max |TinyGrow output|) (the two libtorch versions
/// may order float32 sums differently; nothing else may differ).
module TinyGrow.Tests.PyTorchExportTests

open System
open System.Collections
open System.Diagnostics
open System.IO
open System.Text.Json
open Expecto
open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core
open TinyGrow.Tests.Fixtures
open TinyGrow.Tests.ConvTests

let tolerance = 1e-5

/// (exit code, stdout, stderr) of a process, or None if it cannot be started.
let private runProcess (exe: string) (args: string list) (timeoutMs: int) =
    let info = ProcessStartInfo (exe, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false)
    for a in args do info.ArgumentList.Add a
    try
        use p = nonNull (Process.Start info)
        let out = p.StandardOutput.ReadToEndAsync ()
        let err = p.StandardError.ReadToEndAsync ()
        if not (p.WaitForExit timeoutMs) then
            p.Kill true
            Some (-1, out.Result, $"timed out after {timeoutMs} ms\n{err.Result}")
        else Some (p.ExitCode, out.Result, err.Result)
    with :? ComponentModel.Win32Exception -> None

/// A python3 that imports torch: Debian's /usr/bin/python3 first (a pyenv or venv python3 earlier on
/// PATH does not see Debian's python3-torch), then python3 on PATH. None: python3-torch is absent.
let pythonWithTorch =
    lazy (
        [ "/usr/bin/python3"; "python3" ]
        |> List.tryFind (fun exe ->
            match runProcess exe [ "-c"; "import torch" ] 120_000 with
            | Some (0, _, _) -> true
            | _ -> false))

let private checkScript = """
import json, sys, torch
folder, inputs = sys.argv[1], sys.argv[2]
sys.path.insert(0, folder)
from tinygrow_model import load
model = load(folder)
x = torch.load(inputs)["x"]
with torch.no_grad():
    y = model(x)
print(json.dumps({"torch": torch.__version__, "training": model.training, "shape": list(y.shape), "values": y.flatten().tolist()}))
"""

/// Moves BatchNorm away from its initial state (running statistics 0/1, weight 1, bias 0), so that
/// eval mode really uses the exported buffers.
let private perturbNormalisation (net: Network) (seed: uint64) =
    use g = new torch.Generator (seed)
    use _ = torch.no_grad ()
    // Every BatchNorm lists its buffers as (running mean, running variance).
    net.Buffers |> Array.iteri (fun i b ->
        if i % 2 = 0 then
            use r = torch.randn (b.shape, generator = g)
            b.copy_ (r * 0.1) |> ignore
        else
            use r = torch.rand (b.shape, generator = g)
            b.copy_ (r * 0.5 + 0.75) |> ignore)
    for p in net.Parameters do
        if p.dim () = 1L then
            use r = torch.randn (p.shape, generator = g)
            p.add_ (r * 0.2) |> ignore

/// Exports `net` into a temporary run folder, runs the Python check on `x`, and compares.
let private roundTrip (name: string) (net: Network) (inputShape: int64[]) (classes: int) (x: torch.Tensor) =
    match pythonWithTorch.Force () with
    | None -> skiptest "python3-torch is not installed (apt-get install -y python3-torch python3-numpy; .ci/run installs it): the PyTorch export was not loaded in Python"
    | Some python ->
        withTempFolder (fun dir ->
            ModelFile.save net inputShape classes dir
            PyTorchExport.write net inputShape dir
            let inputs = Path.Combine (dir, "inputs.pt")
            use xc = x.contiguous ()
            let table = Hashtable ()
            table["x"] <- xc
            (using (File.Create inputs) (fun s -> TorchSharp.PyBridge.PyTorchPickler.PickleStateDict (s, table, true)))
            let script = Path.Combine (dir, "check.py")
            File.WriteAllText (script, checkScript)
            match runProcess python [ script; dir; inputs ] 300_000 with
            | None -> failtest $"{python} could not be started"
            | Some (code, out, err) ->
                if code <> 0 then failtest $"{name}: Python exited with {code}:\n{err}\n{out}"
                let doc = JsonDocument.Parse(out.Trim().Split('\n') |> Array.last).RootElement
                Expect.isFalse (doc.GetProperty("training").GetBoolean ()) "loaded in eval mode"
                use expected = forward net x
                let shape = doc.GetProperty("shape").EnumerateArray () |> Seq.map (fun e -> e.GetInt64 ()) |> Seq.toArray
                Expect.equal shape expected.shape $"{name}: output shape"
                let values = doc.GetProperty("values").EnumerateArray () |> Seq.map (fun e -> float32 (e.GetDouble ())) |> Seq.toArray
                use fromPython = torch.tensor(values).reshape expected.shape
                use diff = (fromPython - expected).abs ()
                let maxDiff = diff.max().item<float32> () |> float
                let scale = expected.abs().max().item<float32> () |> float
                // across samples, not only across classes: a network whose output ignores its input
                // (every ReLU dead, the head's bias only) would compare nothing
                let spread = expected.std(0L).mean().item<float32> () |> float
                printfn "  PyTorch export, %s: max |Δ| = %.3g (max |output| %.3g, output std across samples %.3g; torch %s)" name maxDiff scale spread (doc.GetProperty("torch").GetString ())
                Expect.isGreaterThan spread 1e-4 $"{name}: the outputs are not all alike (a meaningful comparison)"
                Expect.isLessThanOrEqual maxDiff (tolerance * max 1.0 scale) $"{name}: Python torch's outputs within {tolerance} (relative) of TinyGrow's")

let private mlp () =
    use g = new torch.Generator (91UL)
    let layer (width: int) (activation: string) (bias: bool) = LayerSpec (Kind = "dense", Width = width, MaxWidth = 64, Activation = activation, Bias = bias)
    let spec = BlockSpec (Kind = "mlp", IsOutput = true,
                          Layers = ResizeArray [ layer 7 "tanh" true; layer 5 "relu" false; layer 4 "selu" true; layer 3 "gelu" true ])
    new Network ([| blockKinds["mlp"].Create (spec, BlockContext ([| 1L; 8L; 8L |], 10, layerKinds, torch.CPU, torch.ScalarType.Float32, g, "mlp")) |])

let private cases : (string * (unit -> Network) * int64[] * int) list =
    [ "MLP (tanh, relu, selu, gelu; a layer without bias)", mlp, [| 1L; 8L; 8L |], 10
      "CNN, BatchNorm, max pool, GAP head",
      (fun () -> cnn 92L torch.ScalarType.Float32 [| 3L; 16L; 16L |]
                     [ conv 4 3 1 1 1 false true "relu" "max2"; conv 3 3 1 1 1 false true "tanh" "none"; denseSpec 5 ] "gap" 10),
      [| 3L; 16L; 16L |], 10
      "CNN, flatten head (conv bias, dilation, avg pool, stride 2; BatchNorm on the last conv)",
      (fun () -> cnn 93L torch.ScalarType.Float32 [| 3L; 16L; 16L |]
                     [ conv 3 3 1 2 2 true false "gelu" "avg2"; conv 2 3 2 1 1 false true "relu" "none"; denseSpec 6 ] "flatten" 7),
      [| 3L; 16L; 16L |], 7
      "ResNet-18 at 1/64",
      (fun () ->
          use g = new torch.Generator (94UL)
          Network.Build (blockKinds, layerKinds, ModelOptions (Preset = "resnet18"), [| 3L; 16L; 16L |], 10, torch.CPU, torch.ScalarType.Float32, g)),
      [| 3L; 16L; 16L |], 10 ]

let tests =
    testList "PyTorch export" [
        test "state names cover every parameter and buffer once, for every block kind" {
            for name, build, shape, _ in cases do
                use net = build ()
                let entries = PyTorchExport.stateDict net shape
                try
                    let names = entries |> Array.map fst
                    Expect.equal (Array.distinct names).Length names.Length $"{name}: names unique"
                    let tensors = entries |> Array.filter (fun (n, _) -> not (n.EndsWith ".num_batches_tracked")) |> Array.map snd
                    let own =
                        net.Blocks |> Array.collect (fun b ->
                            Array.append (b.Parameters |> Seq.map (fun p -> p :> torch.Tensor) |> Seq.toArray) (Seq.toArray b.Buffers))
                    Expect.equal tensors.Length own.Length $"{name}: one name per parameter and buffer"
                    for t, o in Array.zip tensors own do
                        Expect.isTrue (identical t o) $"{name}: same values, in the blocks' order (parameters, then buffers)"
                    Expect.allEqual (names |> Array.map (fun n -> n.StartsWith "blocks.")) true $"{name}: PyTorch-style names"
                finally
                    for _, t in entries do t.Dispose ()
        }

        test "the export of a saved folder (tinygrow export) equals the export of the network" {
            for name, build, shape, classes in cases do
                use net = build ()
                perturbNormalisation net 97UL
                withTempFolder (fun dir ->
                    ModelFile.save net shape classes dir
                    let live = PyTorchExport.stateDict net shape |> Array.sortBy fst
                    let saved = PyTorchExport.stateDictOfFiles dir |> Array.sortBy fst
                    try
                        Expect.equal (Array.map fst saved) (Array.map fst live) $"{name}: same names"
                        for (n, a), (_, b) in Array.zip saved live do
                            Expect.isTrue (identical a b) $"{name}: {n} identical"
                    finally
                        for _, t in Array.append live saved do t.Dispose ())
        }

        test "an export that cannot write its second file leaves the folder as it was: no model.pt, no temporary file" {
            let _, build, shape, classes = List.head cases
            use net = build ()
            withTempFolder (fun dir ->
                ModelFile.save net shape classes dir
                // A folder where tinygrow_model.py's temporary file goes: the second write fails, as on a full disk.
                Directory.CreateDirectory (Path.Combine (dir, "tinygrow_model.py.tmp")) |> ignore
                Expect.throws (fun () -> PyTorchExport.writeFromFiles dir) "the export fails"
                Expect.isFalse (File.Exists (Path.Combine (dir, "model.pt"))) "model.pt is not left without its script"
                Expect.isFalse (File.Exists (Path.Combine (dir, "model.pt.tmp"))) "nor its temporary file"
                Directory.Delete (Path.Combine (dir, "tinygrow_model.py.tmp"))
                PyTorchExport.writeFromFiles dir
                Expect.isTrue (File.Exists (Path.Combine (dir, "model.pt")) && File.Exists (Path.Combine (dir, "tinygrow_model.py"))) "once the way is clear, both are written")
        }

        test "a damaged or mismatched saved folder is an error naming the file, never a crash or a silent export" {
            // every kind: the width check (stateNames' Widths) must accept what the run saved
            let refused (dir: string) (file: string) (words: string) =
                Expect.throwsC (fun () -> PyTorchExport.stateDictOfFiles dir |> Array.iter (fun (_, t) -> t.Dispose ()))
                    (fun e ->
                        Expect.isTrue (e :? InvalidDataException) $"an InvalidDataException (the export command's exit 2), not {e.GetType().Name}: {e.Message}"
                        Expect.stringContains e.Message file $"names {file}: {e.Message}"
                        Expect.stringContains e.Message words $"says why: {e.Message}")
            for name, build, shape, classes in cases do
                use net = build ()
                withTempFolder (fun dir ->
                    ModelFile.save net shape classes dir
                    let bin = Path.Combine (dir, "model.bin")
                    let json = Path.Combine (dir, "model.json")
                    let original = File.ReadAllBytes bin
                    let text = File.ReadAllText json
                    // random bytes, as long as the real file: TorchSharp's own reader would allocate what they say
                    let noise = Array.zeroCreate<byte> original.Length
                    Random(5).NextBytes noise
                    File.WriteAllBytes (bin, noise)
                    refused dir "model.bin" "damaged"
                    File.WriteAllBytes (bin, original[.. original.Length / 2])
                    refused dir "model.bin" "truncated"
                    File.WriteAllBytes (bin, Array.append original [| 0uy; 1uy; 2uy |])
                    refused dir "model.bin" "more than the tensors"
                    File.WriteAllBytes (bin, original)
                    // Blocks edited, ParameterShapes (and model.bin) as saved: the first growable layer one wider
                    let doc = JsonSerializer.Deserialize<ModelFile.SavedModel> text |> nonNull
                    let first = doc.Blocks[0]
                    if first.Layers.Count > 0 then first.Layers[0].Width <- first.Layers[0].Width + 1
                    elif first.Kind = "resnet-stem" then first.Channels <- first.Channels + 1
                    File.WriteAllText (json, JsonSerializer.Serialize doc)
                    refused dir "model.json" "spec in Blocks"
                    File.WriteAllText (json, text[.. text.Length / 2])
                    refused dir "model.json" "not valid JSON"
                    File.WriteAllText (json, text)
                    let entries = PyTorchExport.stateDictOfFiles dir
                    Expect.isNonEmpty entries $"{name}: the restored folder exports again"
                    for _, t in entries do t.Dispose ())
        }

        test "model.bin's SHA-256 in model.json: 4 flipped bytes, an absurd InputShape, a kind edited to lstm are refused by the export and by loading; a model.json without a checksum still reads" {
            let refusedBy (what: string) (read: unit -> unit) (file: string) (words: string) =
                Expect.throwsC read (fun e ->
                    Expect.isTrue (e :? InvalidDataException) $"{what}: an InvalidDataException (the export command's exit 2), not {e.GetType().Name}: {e.Message}"
                    Expect.stringContains e.Message file $"{what} names {file}: {e.Message}"
                    Expect.stringContains e.Message words $"{what} says why: {e.Message}")
            for name, build, shape, classes in cases do
                use net = build ()
                withTempFolder (fun dir ->
                    ModelFile.save net shape classes dir
                    let refused (file: string) (words: string) =
                        refusedBy $"{name}: export" (fun () -> PyTorchExport.stateDictOfFiles dir |> Array.iter (fun (_, t) -> t.Dispose ())) file words
                        refusedBy $"{name}: load" (fun () -> (ModelFile.load blockKinds layerKinds dir torch.CPU :> IDisposable).Dispose ()) file words
                    let bin = Path.Combine (dir, "model.bin")
                    let json = Path.Combine (dir, "model.json")
                    let original = File.ReadAllBytes bin
                    let text = File.ReadAllText json
                    Expect.equal (ModelFile.read dir).ModelBinSha256 (ModelFile.sha256Of bin) $"{name}: model.json records model.bin's SHA-256"
                    // 4 bytes of the last tensor's values, exponent bits flipped: every shape check passes (issue 21: a weight of 1.7e37, exit 0)
                    let flipped = Array.copy original
                    for i in flipped.Length - 4 .. flipped.Length - 1 do flipped[i] <- flipped[i] ^^^ 0x7Fuy
                    File.WriteAllBytes (bin, flipped)
                    refused "model.bin" "SHA-256"
                    File.WriteAllBytes (bin, original)
                    let edited (change: Nodes.JsonObject -> unit) =
                        let doc = Nodes.JsonNode.Parse text |> nonNull
                        change (doc.AsObject ())
                        File.WriteAllText (json, doc.ToJsonString ())
                    let some (node: Nodes.JsonNode | null) : Nodes.JsonNode = match node with null -> failtest "model.json lacks a node" | n -> n
                    let block0 (doc: Nodes.JsonObject) = some ((some doc["Blocks"]).AsArray()[0])
                    let layer0 (doc: Nodes.JsonObject) =
                        let layers = some (block0 doc).["Layers"]
                        some (layers.AsArray()[0])
                    edited (fun doc -> doc["InputShape"] <- Nodes.JsonArray (Nodes.JsonValue.Create 1L, Nodes.JsonValue.Create 100000L, Nodes.JsonValue.Create 100000L))
                    refused "model.json" "InputShape [1, 100000, 100000]"
                    edited (fun doc -> doc["InputShape"] <- Nodes.JsonArray (Nodes.JsonValue.Create (shape[0] + 1L), Nodes.JsonValue.Create shape[1], Nodes.JsonValue.Create shape[2]))
                    refused "model.json" "ParameterShapes"
                    edited (fun doc -> (block0 doc)["Kind"] <- Nodes.JsonValue.Create "lstm")
                    refused "model.json" "'lstm'"
                    if net.Blocks[0].CurrentSpec.Layers.Count > 0 then
                        edited (fun doc -> (layer0 doc)["Kind"] <- Nodes.JsonValue.Create "lstm")
                        refused "model.json" "'lstm'"
                    // a model.json from before the checksum: read as it is
                    edited (fun doc -> doc.Remove "ModelBinSha256" |> ignore)
                    Expect.isNull (ModelFile.read dir).ModelBinSha256 $"{name}: no checksum recorded"
                    PyTorchExport.stateDictOfFiles dir |> Array.iter (fun (_, t) -> t.Dispose ())
                    (ModelFile.load blockKinds layerKinds dir torch.CPU :> IDisposable).Dispose ())
        }

        test "at the end of a run, a block kind without PyTorch names is a warning: nothing written, no exception" {
            let block =
                { new IModelBlock with
                    member _.Kind = "custom"
                    member _.Junctions = [||]
                    member _.Parameters = [||]
                    member _.Buffers = [||]
                    member _.CurrentSpec = BlockSpec (Kind = "custom")
                    member _.OutputShape = [| 2L |]
                    member _.Forward(x, _) = x.alias ()
                    member _.Dispose() = () }
            use net = new Network ([| block |])
            withTempFolder (fun dir ->
                PyTorchExport.writeOrWarn Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance net [| 2L |] dir
                Expect.isEmpty (Directory.GetFiles dir) "no model.pt, no tinygrow_model.py, no temporary file")
        }

        test "an unknown block kind has no names and says where to add them" {
            Expect.throwsC (fun () -> PyTorchExport.stateNames (BlockSpec (Kind = "transformer")) [| 3L |] 10 |> ignore)
                (fun e -> Expect.stringContains e.Message "stateNames" "names the function")
        }

        for name, build, shape, classes in cases do
            test $"Python torch loads the export and computes the same outputs: {name}" {
                use net = build ()
                perturbNormalisation net 95UL
                use g = new torch.Generator (96UL)
                use x = torch.randn (Array.append [| 5L |] shape, generator = g)
                roundTrip name net shape classes x
            }
    ]
