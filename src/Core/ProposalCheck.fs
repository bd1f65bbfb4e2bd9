/// A strategy's proposal checked at the boundary, before it touches a tensor of the network (issue 21
/// §1): a strategy is a plugin, and a fan-in one column short, a NaN or more neurons than the junction
/// has room for would otherwise be zero-padded, refused without a word, or grow a layer past its cap.
module TinyGrow.Core.ProposalCheck

open System
open TorchSharp
open TinyGrow.Abstractions

/// A plugin returned something the contracts do not allow. The run stops (its own exit code); the
/// message names the strategy, its assembly and version, the junction and the field.
type PluginFaultException(message: string) =
    inherit Exception (message)

/// "name (assembly version)" of a strategy, for messages.
let describe (strategy: IGrowthStrategy) =
    let assembly = strategy.GetType().Assembly.GetName ()
    $"'{strategy.Name}' ({assembly.Name} {assembly.Version})"

let private allFinite (t: torch.Tensor) =
    use _ = torch.no_grad ()
    use ok = t.isfinite ()
    use all = ok.all ()
    all.item<bool> ()

let private shapeText (shape: int64[]) = String.Join ("×", shape)

/// The problems of `proposal` for `request` (empty: none), each naming the field.
let problems (request: GrowthRequest) (proposal: NeuronProposal) : string list =
    let stats = request.Statistics
    let k = int64 proposal.NeuronScores.Length
    let d2 = stats.S2.shape[0]                // A's row: its inputs (patch), bias last when it has one
    let columns = stats.M2.shape[1]           // B's outputs (times taps in full conv mode)
    let d1 = stats.S.shape[0]
    [ if isNull (box proposal.FanIn) || isNull (box proposal.FanOut) || isNull (box proposal.NeuronScores) then
          yield "FanIn, FanOut and NeuronScores must all be set"
      else
          let biasNote = if request.Junction.A.HasBias then ", bias last" else ""
          if proposal.FanIn.shape <> [| k; d2 |] then
              yield $"FanIn is {shapeText proposal.FanIn.shape}; for {k} neurons (NeuronScores) it must be {k}×{d2} (one row per neuron over A's {d2} inputs{biasNote})"
          elif not (allFinite proposal.FanIn) then yield "FanIn holds NaN or infinite values"
          if proposal.FanOut.shape <> [| columns; k |] then
              yield $"FanOut is {shapeText proposal.FanOut.shape}; for {k} neurons it must be {columns}×{k} (one column per neuron over B's {columns} outputs)"
          elif not (allFinite proposal.FanOut) then yield "FanOut holds NaN or infinite values"
          if proposal.NeuronScores |> Array.exists (fun s -> not (Double.IsFinite s)) then yield "NeuronScores holds NaN or infinite values"
          if k > int64 request.MaxNeurons then
              yield $"{k} neurons proposed; the request allows at most {request.MaxNeurons} (Growth:NeuronsPerStep and the room left below the layer's MaxWidth)"
      match proposal.Delta with
      | null -> ()
      | delta ->
          if delta.shape <> [| stats.M.shape[1]; d1 |] then
              yield $"Delta is {shapeText delta.shape}; it must be {stats.M.shape[1]}×{d1} (B's outputs × B's inputs)"
          elif not (allFinite delta) then yield "Delta holds NaN or infinite values"
      if not (Double.IsFinite proposal.DeltaDecrease) then yield "DeltaDecrease is not finite"
      if not (Double.IsFinite proposal.ActivationSlope) then yield "ActivationSlope is not finite"
      if proposal.Amplitude.HasValue && not (proposal.Amplitude.Value > 0.0 && Double.IsFinite proposal.Amplitude.Value) then
          yield $"Amplitude = {proposal.Amplitude.Value}: it must be a positive finite number, or unset" ]

/// `strategy.Propose request` on a worker thread, for at most `timeoutSeconds` (a plugin fault past
/// them: the call is left to finish on its own, the run stops); `still seconds` is called every `every`
/// while it runs, so that a long solve is visible in the log. The strategy's own exceptions pass through;
/// `cancellation` ends the wait at once (OperationCanceledException). `meanwhile ()` runs on the calling
/// thread while the strategy proposes (work that does not depend on the proposal, on a core the worker
/// leaves idle; it must not change what the strategy reads); its result comes with the proposal. When it
/// throws, the call is waited for (within the time limit and the stop) and its proposal released, and the
/// work's exception passes through (the strategy's own when both failed).
let proposeWhile (strategy: IGrowthStrategy) (request: GrowthRequest) (timeoutSeconds: float) (every: TimeSpan) (still: float -> unit)
                 (cancellation: Threading.CancellationToken) (meanwhile: unit -> 'M) : NeuronProposal * 'M =
    let clock = Diagnostics.Stopwatch.StartNew ()
    let call =
        Threading.Tasks.Task.Run (fun () ->
            // Dispose scopes are per thread: the worker's own collects the strategy's temporaries, and the
            // proposal's tensors are kept out of it (the caller owns them).
            use scope = torch.NewDisposeScope ()
            let proposal = strategy.Propose request
            let keep (t: torch.Tensor | null) = match t with null -> () | t -> t.DetachFromDisposeScope () |> ignore
            if not (isNull (box proposal)) then
                keep proposal.FanIn
                keep proposal.FanOut
                keep proposal.Delta
            proposal)
    let alongside =
        try meanwhile ()
        with _ ->
            // The strategy still reads the request (statistics, layers) that the caller releases once this throws:
            // wait for it, within its time limit and the stop, and release what it made.
            let remaining = max 0.0 (timeoutSeconds - clock.Elapsed.TotalSeconds)
            let release (t: Threading.Tasks.Task<NeuronProposal>) =
                if t.Status = Threading.Tasks.TaskStatus.RanToCompletion && not (isNull (box t.Result)) then t.Result.Dispose ()
            if (try call.Wait (TimeSpan.FromSeconds remaining, cancellation) with _ -> call.IsCompleted) then release call
            else call.ContinueWith release |> ignore
            // Both failed: the strategy's error, which it would have met first had the two run in turn.
            if call.IsFaulted then call.GetAwaiter().GetResult () |> ignore
            reraise ()
    let mutable finished = false
    while not finished do
        let remaining = timeoutSeconds - clock.Elapsed.TotalSeconds
        // A call that ended while the work meanwhile ran is on time, however long that work took.
        if remaining <= 0.0 && not call.IsCompleted then
            raise (PluginFaultException $"Growth strategy {describe strategy} did not propose for junction {request.Junction.Name} within Growth:StrategyTimeoutSeconds = {timeoutSeconds} s. Nothing was applied; the last checkpoint is the run's state before this step. Fix the strategy plugin, raise Growth:StrategyTimeoutSeconds, or choose another Growth:Strategy.")
        // Task.Wait spins briefly before it blocks, so a short solve is picked up without a kernel wait (the hand-off
        // to and from the worker took about 1 ms a call with WaitAny on the task's wait handle; the change in the
        // default run's growth time is within noise). A faulted call ends the wait: its AggregateException is
        // dropped and GetResult below rethrows the strategy's own exception. A stop (SIGTERM) ends it at once
        // (OperationCanceledException): the step is abandoned, the last checkpoint stands.
        let woke =
            try call.Wait (TimeSpan.FromSeconds (min every.TotalSeconds (max 0.0 remaining)), cancellation)
            with :? AggregateException -> true
        cancellation.ThrowIfCancellationRequested ()
        if woke then finished <- true
        elif clock.Elapsed.TotalSeconds < timeoutSeconds then still clock.Elapsed.TotalSeconds
    call.GetAwaiter().GetResult (), alongside

/// proposeWhile with nothing to do meanwhile.
let proposeWithin (strategy: IGrowthStrategy) (request: GrowthRequest) (timeoutSeconds: float) (every: TimeSpan) (still: float -> unit)
                   (cancellation: Threading.CancellationToken) : NeuronProposal =
    fst (proposeWhile strategy request timeoutSeconds every still cancellation ignore)

/// Throws PluginFaultException when `proposal` breaks the contract.
let check (strategy: IGrowthStrategy) (request: GrowthRequest) (proposal: NeuronProposal) =
    match problems request proposal with
    | [] -> ()
    | found ->
        let all = String.Join ("; ", found)
        raise (PluginFaultException $"Growth strategy {describe strategy} returned an invalid proposal for junction {request.Junction.Name}: {all}. Nothing was applied; the last checkpoint is the run's state before this step. Fix the strategy plugin, or choose another Growth:Strategy.")
