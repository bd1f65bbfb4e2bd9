/// A model: a sequence of blocks (DESIGN §3.1), each owning its layers and junctions. The engine
/// sees the junctions in order (block by block) and never looks inside a block.
namespace TinyGrow.Core

open System
open System.Collections.Generic
open TorchSharp
open TinyGrow.Abstractions

/// What a forward pass through junction j leaves that no candidate at j can change: the input of
/// j's block, j's A input and, when the block can resume at A (IResumableBlock), A's pre-activation
/// output (a candidate only appends channels to it). BOutput, when the block can resume after B
/// (IResumableAfterB): B's pre-activation output as it is, which a unit proposal changes linearly in γ.
/// The tensors belong to the dispose scope of the pass that made them.
type ResumePoint =
    { Junction: int; Block: int; BlockInput: torch.Tensor; AInput: torch.Tensor; AOutput: torch.Tensor | null
      BOutput: torch.Tensor | null }

type Network(blocks: IModelBlock[]) =
    let junctions = blocks |> Array.collect (fun b -> Seq.toArray b.Junctions)
    /// The index of the block that owns each junction.
    let blockOfJunction = blocks |> Array.mapi (fun i b -> Array.create b.Junctions.Count i) |> Array.concat

    member _.Blocks = blocks
    member _.Junctions: IJunction[] = junctions
    member _.JunctionCount = junctions.Length

    /// Widths of the growable layers (each junction's A), in junction order.
    member _.Widths = junctions |> Array.map (fun j -> j.A.OutputWidth)

    member _.Parameters: Modules.Parameter[] = blocks |> Array.collect (fun b -> Seq.toArray b.Parameters)

    /// BatchNorm running statistics and other saved non-trained state.
    member _.Buffers: torch.Tensor[] = blocks |> Array.collect (fun b -> Seq.toArray b.Buffers)

    member this.ParameterCount = this.Parameters |> Array.sumBy (fun p -> p.numel ())

    member _.Forward(x: torch.Tensor, pass: ForwardPass) : torch.Tensor =
        // Intermediate tensors belong to the caller's dispose scope (one per batch).
        let mutable h = x
        for b in blocks do h <- b.Forward (h, pass)
        h

    /// Evaluation-mode forward (normalisation from running statistics).
    member this.Forward(x: torch.Tensor) : torch.Tensor = this.Forward (x, ForwardPass.Evaluation)

    /// A probe forward pass (batch statistics, running ones untouched) that records every junction:
    /// the logits and, in junction order, each junction's record.
    member this.ForwardRecording(x: torch.Tensor) : torch.Tensor * JunctionRecord[] =
        this.ForwardRecording (x, false)

    /// ForwardRecording; with `updateRunningStatistics` it is a training step's forward (running
    /// statistics move), for statistics taken from the training batches themselves.
    member _.ForwardRecording(x: torch.Tensor, updateRunningStatistics: bool) : torch.Tensor * JunctionRecord[] =
        let recorded = Dictionary<IJunction, JunctionRecord> ()
        let pass = ForwardPass (Training = true, UpdateRunningStatistics = updateRunningStatistics, Records = recorded)
        let mutable h = x
        for b in blocks do h <- b.Forward (h, pass)
        let records =
            junctions |> Array.map (fun j ->
                match recorded.TryGetValue j with
                | true, r -> r
                | _ -> invalidOp $"Block did not record junction {j.Name} in a recording pass.")
        h, records

    /// Forward(x, pass) that also returns junction j's resume point (its block records its junctions).
    member _.ForwardKeeping(x: torch.Tensor, j: int, pass: ForwardPass) : torch.Tensor * ResumePoint =
        let owner = blockOfJunction[j]
        let mutable h = x
        let mutable point = Unchecked.defaultof<ResumePoint>
        for i in 0 .. blocks.Length - 1 do
            if i = owner then
                let recorded = Dictionary<IJunction, JunctionRecord> ()
                let recording = ForwardPass (Training = pass.Training, UpdateRunningStatistics = pass.UpdateRunningStatistics, Records = recorded)
                let input = h
                h <- blocks[i].Forward (input, recording)
                match recorded.TryGetValue junctions[j] with
                | true, r ->
                    let aOutput: torch.Tensor | null =
                        match blocks[i], r.AOutput with
                        | :? IResumableBlock, NonNull kept -> kept
                        | :? IResumableBlock, _ -> junctions[j].A.Forward r.AInput
                        | _ -> null
                    let bOutput: torch.Tensor | null = match blocks[i] with :? IResumableAfterB -> r.BOutput | _ -> null
                    point <- { Junction = j; Block = i; BlockInput = input; AInput = r.AInput; AOutput = aOutput; BOutput = bOutput }
                | _ -> invalidOp $"Block did not record junction {junctions[j].Name} in a recording pass."
            else h <- blocks[i].Forward (h, pass)
        h, point

    /// The network's output from a resume point: the owning block resumes at A (IResumableBlock:
    /// A computes only the channels a candidate appended) or runs from its own input; the blocks
    /// after it run as usual. Equals Forward on the input that made the point, to rounding, whatever
    /// candidate is applied at its junction (nothing before A depends on it).
    member this.ForwardFrom(point: ResumePoint, pass: ForwardPass) : torch.Tensor =
        let owned =
            match blocks[point.Block] with
            | :? IResumableBlock as resumable -> resumable.ForwardFrom (junctions[point.Junction], point.AInput, point.AOutput, pass)
            | block -> block.Forward (point.BlockInput, pass)
        this.ForwardAfterBlock (point.Block, owned, pass)

    /// The network's output from block `block`'s output `h` on: the blocks after it, as usual.
    member private _.ForwardAfterBlock(block: int, h: torch.Tensor, pass: ForwardPass) : torch.Tensor =
        let mutable h = h
        for i in block + 1 .. blocks.Length - 1 do h <- blocks[i].Forward (h, pass)
        h

    /// The point's block as one that resumes after its junction's B.
    member private _.ResumableAfterB(point: ResumePoint) : IResumableAfterB =
        match blocks[point.Block] with
        | :? IResumableAfterB as resumable -> resumable
        | block -> invalidOp $"Block {block.Kind} cannot resume after a junction's B (no IResumableAfterB)."

    /// B's pre-activation output from a resume point, with whatever candidate is applied at its junction
    /// (IResumableAfterB.BOutputFrom); equals the record's BOutput on the input that made the point, to rounding.
    member this.BOutputFrom(point: ResumePoint, pass: ForwardPass) : torch.Tensor =
        (this.ResumableAfterB point).BOutputFrom (junctions[point.Junction], point.BlockInput, point.AInput, point.AOutput, pass)

    /// The network's output when the point's junction's B has produced `bOutput` (pre-activation) on the
    /// samples of the point: the owning block resumes after B, the blocks after it run as usual.
    member this.ForwardAfterB(point: ResumePoint, bOutput: torch.Tensor, pass: ForwardPass) : torch.Tensor =
        let owned = (this.ResumableAfterB point).ForwardAfterB (junctions[point.Junction], point.BlockInput, bOutput, pass)
        this.ForwardAfterBlock (point.Block, owned, pass)

    /// Builds the blocks of `model` for inputs of `inputShape` (per sample) and `classes` outputs.
    static member Build
        (blockKinds: IReadOnlyDictionary<string, IBlockKind>, layerKinds: IReadOnlyDictionary<string, ILayerKind>,
         model: ModelOptions, inputShape: int64[], classes: int,
         device: torch.Device, dtype: torch.ScalarType, generator: torch.Generator | null) =
        Network.BuildBlocks (blockKinds, layerKinds, ModelPlan.blocks model, inputShape, classes, device, dtype, generator)

    /// Builds a network from block specs (a plan, or a saved model's).
    static member BuildBlocks
        (blockKinds: IReadOnlyDictionary<string, IBlockKind>, layerKinds: IReadOnlyDictionary<string, ILayerKind>,
         specs: BlockSpec seq, inputShape: int64[], classes: int,
         device: torch.Device, dtype: torch.ScalarType, generator: torch.Generator | null) =
        let kindOf (name: string) =
            match blockKinds.TryGetValue name with
            | true, k -> k
            | _ ->
                let known = String.Join (", ", blockKinds.Keys)
                invalidArg "Model" $"No block kind '{name}' was discovered (known: {known}). Is its plugin in the plugins folder?"
        let built = ResizeArray<IModelBlock> ()
        try
            let mutable shape = inputShape
            let mutable index = 0
            for spec in specs do
                let block = (kindOf spec.Kind).Create (spec, BlockContext (shape, classes, layerKinds, device, dtype, generator, $"{spec.Kind}{index}"))
                built.Add block
                shape <- block.OutputShape
                index <- index + 1
        with _ ->
            for b in built do b.Dispose ()
            reraise ()
        new Network (built.ToArray ())

    interface IDisposable with
        member _.Dispose() = blocks |> Array.iter (fun b -> b.Dispose ())
