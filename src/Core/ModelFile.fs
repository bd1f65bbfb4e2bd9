/// The saved model: model.json (architecture: per layer kind, widths, activation, bias) and
/// model.bin (the parameter tensors in order, TorchSharp's tensor format). Both are written to
/// temporary files and renamed, so a model on disk is always complete.
module TinyGrow.Core.ModelFile

open System.IO
open System.Text.Json
open System.Text.Json.Nodes
open TorchSharp

let private writeAtomically (path: string) (write: Stream -> unit) =
    let tmp = path + ".tmp"
    (using (File.Create tmp) write)
    File.Move (tmp, path, true)

/// Writes model.json and model.bin into `directory`.
let save (net: Network) (directory: string) =
    let layers = JsonArray ()
    for i in 0 .. net.Layers.Length - 1 do
        let l = net.Layers[i]
        let o = JsonObject ()
        o["kind"] <- JsonValue.Create l.Kind
        o["input_width"] <- JsonValue.Create l.InputWidth
        o["output_width"] <- JsonValue.Create l.OutputWidth
        o["activation"] <- JsonValue.Create l.Activation
        o["bias"] <- JsonValue.Create l.HasBias
        o["parameter_shapes"] <- JsonArray (l.Parameters |> Seq.map (fun p -> JsonArray (p.shape |> Array.map (fun d -> JsonValue.Create d :> JsonNode | null)) :> JsonNode | null) |> Seq.toArray)
        layers.Add o
    let doc = JsonObject ()
    doc["format"] <- JsonValue.Create "tinygrow-model-1"
    doc["layers"] <- layers
    writeAtomically (Path.Combine (directory, "model.json")) (fun s ->
        use w = new StreamWriter (s)
        w.Write (doc.ToJsonString (JsonSerializerOptions (WriteIndented = true))))
    writeAtomically (Path.Combine (directory, "model.bin")) (fun s ->
        use w = new BinaryWriter (s)
        for p in net.Parameters do
            use detached = p.detach ()
            use cpu = detached.cpu ()
            cpu.Save w |> ignore)

/// Reads model.bin back into a network of the same architecture (for evaluation or a restart).
let loadInto (net: Network) (directory: string) =
    use s = File.OpenRead (Path.Combine (directory, "model.bin"))
    use r = new BinaryReader (s)
    use _ = torch.no_grad ()
    for p in net.Parameters do
        use cpu = torch.empty_like(p).cpu ()
        cpu.Load r |> ignore
        p.copy_ cpu |> ignore
