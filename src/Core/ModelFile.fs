/// The saved model: model.json (the blocks at their current widths: kinds, layer specs, input shape,
/// classes) and model.bin (the parameter tensors, then the normalisation buffers, in order,
/// TorchSharp's tensor format). Both are written to
/// temporary files and renamed, so a model on disk is always complete.
module TinyGrow.Core.ModelFile

open System.Collections.Generic
open System.IO
open System.Text.Json
open TorchSharp
open TinyGrow.Abstractions

let private writeAtomically (path: string) (write: Stream -> unit) =
    let tmp = path + ".tmp"
    (using (File.Create tmp) write)
    File.Move (tmp, path, true)

/// model.json: the blocks at their current widths and the shapes of the tensors in model.bin.
[<CLIMutable>]
type SavedModel =
    { Format: string
      InputShape: int64[]
      Classes: int
      Blocks: BlockSpec[]
      /// Per block, the shape of each parameter (a reader's check, not needed to rebuild).
      ParameterShapes: int64[][][]
      /// SHA-256 of model.bin (lowercase hex), checked by every reader of model.bin; null in a
      /// model.json written before it was recorded (read all the same, with a warning where a caller
      /// can give one).
      ModelBinSha256: string | null }

let private format = "tinygrow-model-2"
let private json = JsonSerializerOptions (WriteIndented = true)

/// SHA-256 of a file's bytes, lowercase hex.
let sha256Of (path: string) =
    use s = File.OpenRead path
    System.Convert.ToHexStringLower (System.Security.Cryptography.SHA256.HashData s)

/// Writes model.json (blocks: kinds, widths, layer specs, model.bin's SHA-256) and model.bin
/// (parameters, then normalisation buffers, in order) into `directory`.
let save (net: Network) (inputShape: int64[]) (classes: int) (directory: string) =
    let binPath = Path.Combine (directory, "model.bin")
    (using (File.Create (binPath + ".tmp")) (fun s ->
        use w = new BinaryWriter (s)
        for t in Array.append (net.Parameters |> Array.map (fun p -> p :> torch.Tensor)) net.Buffers do
            use detached = t.detach ()
            use cpu = detached.cpu ()
            cpu.Save w |> ignore))
    let doc =
        { Format = format; InputShape = inputShape; Classes = classes
          Blocks = net.Blocks |> Array.map (fun b -> b.CurrentSpec)
          ParameterShapes = net.Blocks |> Array.map (fun b -> b.Parameters |> Seq.map (fun p -> p.shape) |> Seq.toArray)
          ModelBinSha256 = sha256Of (binPath + ".tmp") }
    // model.bin first: a crash between the two renames leaves a model.json whose checksum the new
    // model.bin fails, an error rather than two models mixed.
    File.Move (binPath + ".tmp", binPath, true)
    writeAtomically (Path.Combine (directory, "model.json")) (fun s -> JsonSerializer.Serialize (s, doc, json))

/// A saved model that cannot be read (`tinygrow export` exits 2 with the message).
let private damaged (message: string) : 'T = raise (InvalidDataException message)

let private shapeText (shape: int64[]) = "[" + System.String.Join (", ", shape) + "]"

/// Most values per sample a saved model's InputShape may declare: 2^24 (64 MB of float32 per sample,
/// e.g. 3×2,364×2,364). Datasets here are far below it (CIFAR: 3,072); an InputShape above it is an
/// edited or damaged file, and reading it would make PyTorch allocate what it says.
let maxInputValues = 1L <<< 24

let private isKind (kind: string) (layer: LayerSpec) = System.String.Equals (layer.Kind, kind, System.StringComparison.OrdinalIgnoreCase)

/// Checks what every reader of model.json relies on, naming the file and the key: the lists present
/// and consistent, InputShape an input the model kinds take ([features] or [channels, height, width],
/// at most `maxInputValues` values) and the one the first layer's weights were trained on, and the
/// layer kinds of the shipped block kinds (mlp: dense; cnn: conv, then dense).
let check (jsonPath: string) (doc: SavedModel) =
    let fix = "the file was edited or damaged; use model.json as the run wrote it"
    if isNull (box doc.Blocks) || isNull (box doc.ParameterShapes) || isNull (box doc.InputShape) || doc.Blocks.Length <> doc.ParameterShapes.Length then
        damaged $"{jsonPath} is not a TinyGrow model (Blocks, ParameterShapes or InputShape missing, or Blocks and ParameterShapes of different lengths)."
    if doc.ParameterShapes |> Array.exists (fun block -> isNull (box block) || block |> Array.exists (fun shape -> isNull (box shape) || shape |> Array.exists (fun n -> n < 1L))) then
        damaged $"{jsonPath}: ParameterShapes holds a missing shape or a dimension below 1: the file is damaged."
    let shape = doc.InputShape
    if shape.Length < 1 || shape.Length > 4 || shape |> Array.exists (fun d -> d < 1L) then
        damaged $"{jsonPath}: InputShape {shapeText shape} is not an input the model kinds take (1 to 4 dimensions, e.g. [features] or [channels, height, width], each at least 1): {fix}."
    let values = shape |> Array.fold (fun n d -> n * decimal d) 1M
    if values > decimal maxInputValues then
        damaged $"{jsonPath}: InputShape {shapeText shape} is {values} values per sample, above the {maxInputValues} a saved model may declare: {fix}."
    if doc.Classes < 1 then damaged $"{jsonPath}: Classes = {doc.Classes}: a model has at least one output; {fix}."
    doc.Blocks |> Array.iteri (fun i spec ->
        if isNull (box spec) || isNull (box spec.Kind) then damaged $"{jsonPath}: Blocks[{i}] has no Kind: {fix}."
        if not (isNull (box spec.Layers)) && spec.Layers |> Seq.exists (fun l -> isNull (box l) || isNull (box l.Kind)) then
            damaged $"{jsonPath}: Blocks[{i}].Layers holds a layer without Kind: {fix}.")
    // The first layer reads the input: its weight's second dimension is what InputShape gives it.
    if doc.Blocks.Length > 0 && doc.ParameterShapes[0].Length > 0 then
        let first, weight = doc.Blocks[0], doc.ParameterShapes[0][0]
        let layers = if isNull (box first.Layers) then [||] else Seq.toArray first.Layers
        // (a plugin's own layer kind may shape its weight otherwise: not checked)
        let firstIs (kind: string) = layers.Length > 0 && isKind kind layers[0]
        let expected =
            match first.Kind with
            | "resnet-stem" | "cnn" when first.Kind = "resnet-stem" || firstIs "conv" ->
                if shape.Length <> 3 then
                    damaged $"{jsonPath}: InputShape {shapeText shape} is not [channels, height, width], which the first block ({first.Kind}, a convolution) takes: {fix}."
                Some (shape[0], "its channels")
            | "mlp" | "cnn" when layers.Length = 0 || firstIs "dense" -> Some (int64 values, "its values per sample")
            | _ -> None
        match expected with
        | Some (n, what) when weight.Length < 2 || weight[1] <> n ->
            damaged $"{jsonPath}: InputShape {shapeText shape} gives the first layer {n} inputs ({what}), but its weight in ParameterShapes is {shapeText weight}: {fix}."
        | _ -> ()

/// model.json of `directory`, parsed and checked (`check`); errors name the file.
let read (directory: string) : SavedModel =
    let path = Path.Combine (directory, "model.json")
    let doc =
        try JsonSerializer.Deserialize<SavedModel> (File.ReadAllText path)
        with :? JsonException as e -> damaged $"{path} is not valid JSON ({e.Message}): it is damaged; the run's model cannot be read from it."
    match doc with
    | null -> damaged $"{path} is empty."
    | d when d.Format <> format -> damaged $"{path} is not a TinyGrow model of format {format} (it says '{d.Format}')."
    | d ->
        check path d
        d

/// Checks model.bin against the SHA-256 model.json records; false when model.json records none (a
/// model written before it did: not checked). A mismatch names the file.
let verifyChecksum (directory: string) (doc: SavedModel) : bool =
    match doc.ModelBinSha256 with
    | null -> false
    | recorded ->
        let binPath = Path.Combine (directory, "model.bin")
        let actual = sha256Of binPath
        if not (System.String.Equals (actual, recorded, System.StringComparison.OrdinalIgnoreCase)) then
            damaged $"{binPath} is damaged: its SHA-256 is {actual}, but model.json records {recorded} (bytes changed on disk or in a copy, or the two files come from different models). Copy model.bin again from where the run wrote it."
        true

/// Reads model.bin back into a network of the same architecture, after checking it against the
/// SHA-256 its model.json records (when it records one).
let loadInto (net: Network) (directory: string) =
    if File.Exists (Path.Combine (directory, "model.json")) then
        verifyChecksum directory (read directory) |> ignore
    use s = File.OpenRead (Path.Combine (directory, "model.bin"))
    use r = new BinaryReader (s)
    use _ = torch.no_grad ()
    for t in Array.append (net.Parameters |> Array.map (fun p -> p :> torch.Tensor)) net.Buffers do
        use cpu = torch.empty_like(t).cpu ()
        cpu.Load r |> ignore
        t.copy_ cpu |> ignore

/// Rebuilds a saved model (model.json + model.bin in `directory`) with the given kinds, on `device`:
/// model.json is checked (`check`), then every block against its kind (`IBlockKind.Validate`, on the
/// shape the blocks before it give), before anything is built.
let load (blockKinds: IReadOnlyDictionary<string, IBlockKind>) (layerKinds: IReadOnlyDictionary<string, ILayerKind>)
         (directory: string) (device: torch.Device) : Network =
    let path = Path.Combine (directory, "model.json")
    let doc = read directory
    let mutable shape = doc.InputShape
    doc.Blocks |> Array.iteri (fun i spec ->
        match blockKinds.TryGetValue spec.Kind with
        | false, _ ->
            let known = System.String.Join (", ", blockKinds.Keys)
            damaged $"{path}: Blocks[{i}].Kind is '{spec.Kind}', which no discovered block kind is (known: {known}): the file was edited, or its plugin is missing."
        | true, kind ->
            if not (isNull (box spec.Layers)) then
                for j in 0 .. spec.Layers.Count - 1 do
                    if not (layerKinds.ContainsKey spec.Layers[j].Kind) then
                        let known = System.String.Join (", ", layerKinds.Keys)
                        damaged $"{path}: Blocks[{i}].Layers[{j}].Kind is '{spec.Layers[j].Kind}', which no discovered layer kind is (known: {known}): the file was edited, or its plugin is missing."
            match Seq.toList (kind.Validate (spec, shape, $"{path}: Blocks[{i}]")) with
            | [] -> shape <- kind.OutputShape (spec, shape, doc.Classes)
            | problems -> damaged (System.String.Join (" ", problems)))
    let net = Network.BuildBlocks (blockKinds, layerKinds, doc.Blocks, doc.InputShape, doc.Classes, device, torch.ScalarType.Float32, null)
    try
        loadInto net directory
        net
    with _ ->
        (net :> System.IDisposable).Dispose ()
        reraise ()
