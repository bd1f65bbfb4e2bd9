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
      ParameterShapes: int64[][][] }

let private format = "tinygrow-model-2"
let private json = JsonSerializerOptions (WriteIndented = true)

/// Writes model.json (blocks: kinds, widths, layer specs) and model.bin (parameters, then
/// normalisation buffers, in order) into `directory`.
let save (net: Network) (inputShape: int64[]) (classes: int) (directory: string) =
    let doc =
        { Format = format; InputShape = inputShape; Classes = classes
          Blocks = net.Blocks |> Array.map (fun b -> b.CurrentSpec)
          ParameterShapes = net.Blocks |> Array.map (fun b -> b.Parameters |> Seq.map (fun p -> p.shape) |> Seq.toArray) }
    writeAtomically (Path.Combine (directory, "model.json")) (fun s -> JsonSerializer.Serialize (s, doc, json))
    writeAtomically (Path.Combine (directory, "model.bin")) (fun s ->
        use w = new BinaryWriter (s)
        for t in Array.append (net.Parameters |> Array.map (fun p -> p :> torch.Tensor)) net.Buffers do
            use detached = t.detach ()
            use cpu = detached.cpu ()
            cpu.Save w |> ignore)

/// Reads model.bin back into a network of the same architecture.
let loadInto (net: Network) (directory: string) =
    use s = File.OpenRead (Path.Combine (directory, "model.bin"))
    use r = new BinaryReader (s)
    use _ = torch.no_grad ()
    for t in Array.append (net.Parameters |> Array.map (fun p -> p :> torch.Tensor)) net.Buffers do
        use cpu = torch.empty_like(t).cpu ()
        cpu.Load r |> ignore
        t.copy_ cpu |> ignore

/// Rebuilds a saved model (model.json + model.bin in `directory`) with the given kinds, on `device`.
let load (blockKinds: IReadOnlyDictionary<string, IBlockKind>) (layerKinds: IReadOnlyDictionary<string, ILayerKind>)
         (directory: string) (device: torch.Device) : Network =
    let path = Path.Combine (directory, "model.json")
    let doc =
        match JsonSerializer.Deserialize<SavedModel> (File.ReadAllText path) with
        | null -> invalidArg "directory" $"{path} is empty."
        | d when d.Format <> format -> invalidArg "directory" $"{path} is not a TinyGrow model of format {format} (it says '{d.Format}')."
        | d -> d
    let net = Network.BuildBlocks (blockKinds, layerKinds, doc.Blocks, doc.InputShape, doc.Classes, device, torch.ScalarType.Float32, null)
    try
        loadInto net directory
        net
    with _ ->
        (net :> System.IDisposable).Dispose ()
        reraise ()
