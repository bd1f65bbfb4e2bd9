/// SGD with momentum and Adam whose state survives growth. Written here rather than taken from
/// TorchSharp because growth replaces parameter tensors by larger ones: TorchSharp's optimizers key
/// their state by tensor handle, so it would have to be dug out, padded and re-inserted anyway.
/// Here the state is a tensor per parameter slot, and `AfterGrowth` pads it: existing entries keep
/// their momentum / moments, new entries start at zero (growth appends rows and columns, so the
/// old tensor is the leading block of the new one).
namespace TinyGrow.Core

open TorchSharp
open TorchSharp.Modules

module private StateTensors =
    /// A zero tensor shaped like `p` with `old` copied into its leading block; `old` itself when the shapes
    /// agree (a parameter the step did not grow: most of them, and a copy per step of each was measurable).
    let padTo (p: torch.Tensor) (old: torch.Tensor) =
        if old.shape = p.shape then old
        else
            let fresh = torch.zeros_like p
            fresh.DetachFromDisposeScope () |> ignore
            let mutable view = fresh
            for d in 0 .. int (old.dim ()) - 1 do
                view <- view.narrow (int64 d, 0L, old.shape[d])
            view.copy_ old |> ignore
            old.Dispose ()
            fresh

    let zerosLike (p: torch.Tensor) =
        let t = torch.zeros_like p
        t.DetachFromDisposeScope () |> ignore
        t

    /// Calls `update i p g` for every parameter that has a gradient, without autograd and with one
    /// dispose scope per parameter; g includes the L2 weight decay λ·w.
    let forEachGradient (ps: Parameter[]) (weightDecay: float) (update: int -> Parameter -> torch.Tensor -> unit) =
        use _ = torch.no_grad ()
        for i in 0 .. ps.Length - 1 do
            match ps[i].grad with
            | null -> ()
            | g ->
                use scope = torch.NewDisposeScope ()
                update i ps[i] (if weightDecay > 0.0 then g + ps[i] * weightDecay else g)

type IOptimizer =
    /// One update of every parameter that has a gradient.
    abstract Step: learningRate: float -> unit
    /// Pads the state after parameters were replaced by grown ones.
    abstract AfterGrowth: unit -> unit
    /// State tensors of parameter slot i (for tests and checkpoints).
    abstract State: slot: int -> torch.Tensor[]
    /// Replaces the state by `states` (per slot, what `State` returned; all empty: no step yet),
    /// taking ownership of the tensors (a resumed run).
    abstract Restore: states: torch.Tensor[][] -> unit

/// v ← μ v + (g + λ w);  w ← w − lr·v
type Sgd(parameters: unit -> Parameter[], momentum: float, weightDecay: float) =
    let mutable buffers: torch.Tensor[] = [||]
    let ensure (ps: Parameter[]) =
        if buffers.Length <> ps.Length then buffers <- ps |> Array.map (fun p -> StateTensors.zerosLike p)

    interface IOptimizer with
        member _.Step lr =
            let ps = parameters ()
            ensure ps
            StateTensors.forEachGradient ps weightDecay (fun i p g ->
                if momentum > 0.0 then
                    buffers[i].mul_(momentum.ToScalar ()).add_ g |> ignore
                    p.sub_ (buffers[i] * lr) |> ignore
                else p.sub_ (g * lr) |> ignore)

        member _.AfterGrowth() =
            let ps = parameters ()
            if buffers.Length = ps.Length then buffers <- Array.map2 (fun p b -> StateTensors.padTo p b) ps buffers

        member _.State slot = if slot < buffers.Length then [| buffers[slot] |] else [||]

        member _.Restore states =
            for b in buffers do b.Dispose ()
            buffers <- if states |> Array.forall Array.isEmpty then [||] else states |> Array.map (fun s -> s[0])

/// Adam (Kingma & Ba) with a step count per entry, so that entries added by growth get their own
/// bias correction from their first update instead of the run's global step count.
type Adam(parameters: unit -> Parameter[], beta1: float, beta2: float, eps: float, weightDecay: float) =
    let mutable m: torch.Tensor[] = [||]
    let mutable v: torch.Tensor[] = [||]
    let mutable t: torch.Tensor[] = [||]
    let ensure (ps: Parameter[]) =
        if m.Length <> ps.Length then
            m <- ps |> Array.map (fun p -> StateTensors.zerosLike p)
            v <- ps |> Array.map (fun p -> StateTensors.zerosLike p)
            t <- ps |> Array.map (fun p -> StateTensors.zerosLike p)

    interface IOptimizer with
        member _.Step lr =
            let ps = parameters ()
            ensure ps
            StateTensors.forEachGradient ps weightDecay (fun i p g ->
                t[i].add_ (1.0.ToScalar ()) |> ignore
                m[i].mul_(beta1.ToScalar ()).add_ (g * (1.0 - beta1)) |> ignore
                v[i].mul_(beta2.ToScalar ()).add_ (g.square () * (1.0 - beta2)) |> ignore
                let mHat = m[i] / (1.0 - torch.pow (beta1, t[i]))
                let vHat = v[i] / (1.0 - torch.pow (beta2, t[i]))
                p.sub_ (mHat / (vHat.sqrt () + eps) * lr) |> ignore)

        member _.AfterGrowth() =
            let ps = parameters ()
            if m.Length = ps.Length then
                m <- Array.map2 (fun p s -> StateTensors.padTo p s) ps m
                v <- Array.map2 (fun p s -> StateTensors.padTo p s) ps v
                t <- Array.map2 (fun p s -> StateTensors.padTo p s) ps t

        member _.State slot = if slot < m.Length then [| m[slot]; v[slot]; t[slot] |] else [||]

        member _.Restore states =
            for s in Array.concat [ m; v; t ] do s.Dispose ()
            let empty = states |> Array.forall Array.isEmpty
            m <- if empty then [||] else states |> Array.map (fun s -> s[0])
            v <- if empty then [||] else states |> Array.map (fun s -> s[1])
            t <- if empty then [||] else states |> Array.map (fun s -> s[2])
