/// The PyTorch export of a model: model.pt, a state dict that Python's `torch.load` reads
/// (TorchSharp.PyBridge's pickler), with PyTorch-style names (`blocks.0.layers.1.weight`,
/// `blocks.0.bn1.running_mean`, …), and tinygrow_model.py, which rebuilds the model as a
/// torch.nn.Module from model.json (ModelFile) and loads model.pt into it.
///
/// The names come from one place, `stateNames`: per block kind, the names of its `Parameters`
/// and `Buffers` in the order the block lists them (derived from its spec, never from tensor
/// shapes). tinygrow_model.py (python/ in the repository, embedded in this assembly) builds
/// modules with exactly these attribute paths; `load_state_dict(strict=True)` checks every name
/// and shape on the Python side.
module TinyGrow.Core.PyTorchExport

open System
open System.Collections
open System.IO
open Microsoft.Extensions.Logging
open TorchSharp
open TinyGrow.Abstractions

/// A block's state names, relative to the block: parameters and buffers in the block's order, the
/// BatchNorm modules (each gets PyTorch's `num_batches_tracked`, which TinyGrow does not keep), and
/// the weights whose first dimension the spec fixes (a layer's width, the classes), which the export
/// of a saved folder checks model.json's ParameterShapes against.
type BlockStateNames = { Parameters: string[]; Buffers: string[]; BatchNorms: string[]; Widths: (string * int)[] }

let private isConv (s: LayerSpec) = String.Equals (s.Kind, "conv", StringComparison.OrdinalIgnoreCase)

let private linear (prefix: string) (bias: bool) = [ yield $"{prefix}.weight"; if bias then yield $"{prefix}.bias" ]
let private bnParameters (prefix: string) = [ $"{prefix}.weight"; $"{prefix}.bias" ]
let private bnBuffers (prefix: string) = [ $"{prefix}.running_mean"; $"{prefix}.running_var" ]

/// The state names of a block of `spec` whose input has `inputShape` (per sample), in a network of
/// `classes` outputs. Mirrors each kind's `Parameters`/`Buffers` order: mlp (MlpBlock.fs), cnn
/// (CnnBlock.fs), resnet-* (ResNet.fs).
let stateNames (spec: BlockSpec) (inputShape: int64[]) (classes: int) : BlockStateNames =
    match spec.Kind with
    | "mlp" ->
        // hidden dense layers, then the output layer (one neuron per class)
        let hidden = [ for i in 0 .. spec.Layers.Count - 1 do yield! linear $"layers.{i}" spec.Layers[i].Bias ]
        { Parameters = [| yield! hidden; yield! linear $"layers.{spec.Layers.Count}" spec.OutputBias |]
          Buffers = [||]; BatchNorms = [||]
          Widths = [| for i in 0 .. spec.Layers.Count - 1 do yield $"layers.{i}.weight", spec.Layers[i].Width
                      yield $"layers.{spec.Layers.Count}.weight", classes |] }
    | "cnn" ->
        let layers = Seq.toArray spec.Layers
        let convs = layers |> Array.takeWhile isConv
        let denses = layers[convs.Length ..]
        let stage (i: int) (s: LayerSpec) =
            [ yield! linear $"stages.{i}.conv" (s.Bias && not s.BatchNorm)
              if s.BatchNorm then yield! bnParameters $"stages.{i}.bn" ]
        { Parameters =
            [| for i in 0 .. convs.Length - 1 do yield! stage i convs[i]
               for i in 0 .. denses.Length - 1 do yield! linear $"dense.{i}" denses[i].Bias
               yield! linear $"dense.{denses.Length}" spec.OutputBias |]
          Buffers = [| for i in 0 .. convs.Length - 1 do if convs[i].BatchNorm then yield! bnBuffers $"stages.{i}.bn" |]
          BatchNorms = [| for i in 0 .. convs.Length - 1 do if convs[i].BatchNorm then yield $"stages.{i}.bn" |]
          Widths = [| for i in 0 .. convs.Length - 1 do yield $"stages.{i}.conv.weight", convs[i].Width
                      for i in 0 .. denses.Length - 1 do yield $"dense.{i}.weight", denses[i].Width
                      yield $"dense.{denses.Length}.weight", classes |] }
    | "resnet-stem" ->
        { Parameters = [| yield "conv.weight"; yield! bnParameters "bn" |]; Buffers = Array.ofList (bnBuffers "bn"); BatchNorms = [| "bn" |]
          Widths = [| "conv.weight", spec.Channels |] }
    | "resnet-basic" ->
        // a 1×1 conv + BN shortcut when the shape changes (as BasicBlockKind.Create decides)
        let shortcut = spec.Stride <> 1 || (inputShape.Length > 0 && inputShape[0] <> int64 spec.Channels)
        { Parameters =
            [| yield "conv1.weight"; yield! bnParameters "bn1"; yield "conv2.weight"; yield! bnParameters "bn2"
               if shortcut then
                   yield "downsample.0.weight"
                   yield! bnParameters "downsample.1" |]
          Buffers = [| yield! bnBuffers "bn1"; yield! bnBuffers "bn2"; if shortcut then yield! bnBuffers "downsample.1" |]
          BatchNorms = [| yield "bn1"; yield "bn2"; if shortcut then yield "downsample.1" |]
          Widths = [| "conv1.weight", spec.Width; "conv2.weight", spec.Channels |] }
    | "resnet-head" ->
        { Parameters = Array.ofList (linear "fc" spec.OutputBias); Buffers = [||]; BatchNorms = [||]; Widths = [| "fc.weight", classes |] }
    | other ->
        invalidArg "spec" $"No PyTorch export for block kind '{other}': add its names to PyTorchExport.stateNames and its module to python/tinygrow_model.py."

/// The state dict of `net` (whose input per sample has `inputShape`): (name, tensor) in block order,
/// parameters then buffers then `num_batches_tracked` per block. The tensors are new CPU float32
/// copies (the caller disposes them). A block whose tensor count differs from its names is an error.
let stateDict (net: Network) (inputShape: int64[]) : (string * torch.Tensor)[] =
    use _ = torch.no_grad ()
    let mutable shape = inputShape
    let classes = if net.Blocks.Length = 0 then 0 else int (Array.last net.Blocks).OutputShape[0]
    let entries = ResizeArray<string * torch.Tensor> ()
    try
        net.Blocks
        |> Array.iteri (fun i block ->
            let names = stateNames block.CurrentSpec shape classes
            let parameters = block.Parameters |> Seq.map (fun p -> p :> torch.Tensor) |> Seq.toArray
            let buffers = Seq.toArray block.Buffers
            if names.Parameters.Length <> parameters.Length || names.Buffers.Length <> buffers.Length then
                invalidOp $"Block {i} ({block.Kind}) has {parameters.Length} parameters and {buffers.Length} buffers, but its PyTorch names are {names.Parameters.Length} and {names.Buffers.Length}: PyTorchExport.stateNames is out of date with the block."
            let copy (t: torch.Tensor) = t.detach().cpu().contiguous().clone ()
            for name, t in Array.append (Array.zip names.Parameters parameters) (Array.zip names.Buffers buffers) do
                entries.Add ($"blocks.{i}.{name}", copy t)
            for bn in names.BatchNorms do
                entries.Add ($"blocks.{i}.{bn}.num_batches_tracked", torch.tensor (0L))
            shape <- block.OutputShape)
        entries.ToArray ()
    with _ ->
        for _, t in entries do t.Dispose ()
        reraise ()

/// A saved folder that cannot be exported (`tinygrow export` exits 2 with the message).
let private damaged (message: string) : 'T = raise (InvalidDataException message)

let private shapeText (shape: int64[]) = "[" + String.Join (", ", shape) + "]"

/// The block kinds `stateNames` knows.
let exportedKinds = [| "mlp"; "cnn"; "resnet-stem"; "resnet-basic"; "resnet-head" |]

/// model.json of `directory`, checked (ModelFile.check), with block kinds the export knows. Errors name the file.
let private readSavedModel (jsonPath: string) : ModelFile.SavedModel =
    let doc = ModelFile.read (Path.GetDirectoryName jsonPath |> nonNull)
    doc.Blocks |> Array.iteri (fun i spec ->
        if not (Array.contains spec.Kind exportedKinds) then
            let known = String.Join (", ", exportedKinds)
            damaged $"{jsonPath}: Blocks[{i}].Kind is '{spec.Kind}', not a block kind the export knows ({known}): the file was edited or damaged, or the model uses a plugin's own block kind, which has no PyTorch export."
        // stateNames names dense layers (mlp), conv layers then dense layers (cnn)
        let layers = if isNull (box spec.Layers) then [||] else Seq.toArray spec.Layers
        let isKind (kind: string) (l: LayerSpec) = String.Equals (l.Kind, kind, StringComparison.OrdinalIgnoreCase)
        let convs = if spec.Kind = "cnn" then layers |> Array.takeWhile (isKind "conv") |> Array.length else 0
        match layers |> Array.indexed |> Array.tryFind (fun (j, l) -> (j >= convs || not (isKind "conv" l)) && not (isKind "dense" l)) with
        | Some (j, l) when spec.Kind = "mlp" || spec.Kind = "cnn" ->
            let holds = if spec.Kind = "mlp" then "an mlp block holds dense layers" else "a cnn block holds conv layers, then dense layers"
            damaged $"{jsonPath}: Blocks[{i}].Layers[{j}].Kind is '{l.Kind}', but {holds} (the layer kinds the export knows): the file was edited or damaged, or the model uses a plugin's own layer kind, which has no PyTorch export."
        | _ -> ())
    doc

/// The state dict of a saved model (model.json + model.bin in `directory`, ModelFile's format),
/// without building it (no plugin needed): model.bin's tensors are the blocks' parameters (shapes
/// from model.json's ParameterShapes, checked against each block's spec), then the buffers (the
/// BatchNorm statistics, shaped as their BatchNorm's weight), in block order. Each tensor is read
/// into one of the shape model.json gives, never one the file's header asks for, so a damaged
/// model.bin is an error that names it, not an allocation of whatever its bytes say.
let stateDictOfFiles (directory: string) : (string * torch.Tensor)[] =
    let jsonPath = Path.Combine (directory, "model.json")
    let binPath = Path.Combine (directory, "model.bin")
    let doc = readSavedModel jsonPath
    // per block, its names; a block's input channels are the previous one's output channels
    let names =
        let mutable shape = doc.InputShape
        [| for spec in doc.Blocks do
             yield stateNames spec shape doc.Classes
             shape <- match spec.Kind with
                      | "resnet-stem" | "resnet-basic" -> [| int64 spec.Channels |]
                      | _ -> [| int64 doc.Classes |] |]
    names |> Array.iteri (fun i n ->
        let spec, shapes = doc.Blocks[i], doc.ParameterShapes[i]
        if n.Parameters.Length <> shapes.Length then
            damaged $"{jsonPath}: block {i} ({spec.Kind}) lists {shapes.Length} parameters, but its PyTorch names are {n.Parameters.Length}."
        for name, width in n.Widths do
            let shape = shapes[Array.IndexOf (n.Parameters, name)]
            if shape.Length = 0 || shape[0] <> int64 width then
                damaged $"{jsonPath}: block {i} ({spec.Kind}) has {name} of shape {shapeText shape} in ParameterShapes, but its spec in Blocks gives it {width} outputs: the file was edited or mixes two models; export a run folder as the run wrote it.")
    let bytesOf (shape: int64[]) = (shape |> Array.fold (fun n d -> n * decimal d) 1M) * 4M
    let parameterBytes = doc.ParameterShapes |> Array.sumBy (Array.sumBy bytesOf)
    let fileBytes = FileInfo(binPath).Length
    if parameterBytes > decimal fileBytes then
        damaged $"{binPath} is {fileBytes} bytes, but the parameters model.json lists need {parameterBytes}: model.bin is truncated or belongs to another model.json."
    let entries = ResizeArray<string * torch.Tensor> ()
    try
        use s = File.OpenRead binPath
        use r = new BinaryReader (s)
        let read (name: string) (shape: int64[]) =
            if decimal (s.Length - s.Position) < bytesOf shape then
                damaged $"{binPath} ends before {name} ({shapeText shape}, as model.json lists it): the file is truncated."
            let t = torch.empty (shape, dtype = torch.ScalarType.Float32)
            try
                t.Load r
                t
            with e ->
                t.Dispose ()
                damaged $"{binPath}: {name} cannot be read as float32 {shapeText shape}, the shape model.json lists ({e.Message}): model.bin is damaged or belongs to another model.json."
        names |> Array.iteri (fun i n ->
            Array.iter2 (fun name shape -> entries.Add ($"blocks.{i}.{name}", read name shape)) n.Parameters doc.ParameterShapes[i])
        names |> Array.iteri (fun i n ->
            for name in n.Buffers do
                // BatchNorm buffers (running_mean, running_var) have their BatchNorm weight's shape
                let weight = $"blocks.{i}.{name.Substring (0, name.LastIndexOf '.')}.weight"
                let shape =
                    match entries |> Seq.tryFind (fun (n, _) -> n = weight) with
                    | Some (_, w) -> w.shape
                    | None -> invalidOp $"The buffer {name} of block {i} has no {weight} to take its shape from: PyTorchExport.stateNames is out of date."
                entries.Add ($"blocks.{i}.{name}", read name shape)
            for bn in n.BatchNorms do entries.Add ($"blocks.{i}.{bn}.num_batches_tracked", torch.tensor (0L)))
        if s.Position <> s.Length then damaged $"{binPath} holds more than the tensors model.json lists: it belongs to another model.json."
        // Last: the shape checks above name what is wrong more precisely; flipped bytes pass them all.
        ModelFile.verifyChecksum directory doc |> ignore
        entries.ToArray ()
    with _ ->
        for _, t in entries do t.Dispose ()
        reraise ()

/// The Python file that rebuilds the model (python/tinygrow_model.py, embedded).
let pythonSource () =
    let assembly = typeof<BlockStateNames>.Assembly
    use stream =
        match assembly.GetManifestResourceStream "tinygrow_model.py" with
        | null -> invalidOp "tinygrow_model.py is not embedded in TinyGrow.Core."
        | s -> s
    use reader = new StreamReader (stream)
    reader.ReadToEnd ()

/// model.pt and tinygrow_model.py, each written in full to a temporary file beside it before either replaces what
/// was there: a failure (a full disk, a folder in the way) leaves the folder as it was, temporaries removed.
let private writeEntries (entries: (string * torch.Tensor)[]) (directory: string) =
    let pt, py = Path.Combine (directory, "model.pt"), Path.Combine (directory, "tinygrow_model.py")
    try
        try
            let table = Hashtable ()
            for name, t in entries do table[name] <- t
            (use s = File.Create (pt + ".tmp") in TorchSharp.PyBridge.PyTorchPickler.PickleStateDict (s, table, true))
            (use s = File.Create (py + ".tmp")
             use w = new StreamWriter (s)
             w.Write (pythonSource ()))
            File.Move (pt + ".tmp", pt, true)
            File.Move (py + ".tmp", py, true)
        finally
            for tmp in [ pt + ".tmp"; py + ".tmp" ] do
                if File.Exists tmp then File.Delete tmp
    finally
        for _, t in entries do t.Dispose ()

/// Writes model.pt (the state dict, loadable with Python's `torch.load`) and tinygrow_model.py into
/// `directory`, beside the model.json that ModelFile.save writes (the architecture it reads).
let write (net: Network) (inputShape: int64[]) (directory: string) = writeEntries (stateDict net inputShape) directory

/// The same export for a folder that holds model.json and model.bin (`tinygrow export <run-folder>`).
let writeFromFiles (directory: string) = writeEntries (stateDictOfFiles directory) directory

/// `write` at the end of a run: a failure (a block kind without PyTorch names, a full disk) is a
/// warning, not a failed run; model.json and model.bin are already written, and
/// `tinygrow export <run-folder>` can write the export later.
let writeOrWarn (logger: ILogger) (net: Network) (inputShape: int64[]) (directory: string) =
    try write net inputShape directory
    with e -> logger.LogWarning ("PyTorch export (model.pt, tinygrow_model.py) not written: {Reason}", e.Message)
