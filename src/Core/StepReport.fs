/// What a growth step leaves behind once its junctions have grown (DESIGN §3): the run state's per-junction
/// γ starts and refusal counts, the optimizer's entries for the new weights, TensorBoard, the live display,
/// the `growth` lines of metrics.jsonl and the log. The engine calls it after every step or window.
module TinyGrow.Core.StepReport

open System
open Microsoft.Extensions.Logging
open TinyGrow.Abstractions

/// Books what a growth step (or part of one) did: the γ each junction chose, the optimizer's new
/// entries, TensorBoard, the live display (`observer`), `growth` lines and the log. Returns the neurons added.
let book (logger: ILogger) (observer: IRunProgress) (strategyName: string) (net: Network) (optimizer: IOptimizer) (log: RunLog)
         (board: TensorBoardLog) (epoch: int) (stepIndex: int) (state: RunState) (events: GammaSearch.GrowthEvent list) =
    // A per-junction array of the state (null or short in older checkpoints: padded with `zero`), each
    // event's junction set to `next event current`.
    let perJunction (current: 'T[] | null) (zero: 'T) (next: GammaSearch.GrowthEvent -> 'T -> 'T) =
        let old = match current with | null -> [||] | a -> a
        let now = Array.init net.JunctionCount (fun j -> if j < old.Length then old[j] else zero)
        for e in events do now[e.Junction] <- next e now[e.Junction]
        now
    state.LastGammas <- perJunction state.LastGammas 0.0 (fun e g -> if e.NextStart > 0.0 then e.NextStart else g)
    state.AcceptedGammas <- perJunction state.AcceptedGammas 0.0 (fun e g -> if e.Added > 0 && e.Gamma > 0.0 then e.Gamma else g)
    state.EmptyInARow <- perJunction state.EmptyInARow 0 (fun e n -> if e.Added > 0 then 0 else n + 1)
    optimizer.AfterGrowth ()
    board.Growth events
    for e in events do
        observer.Grown (stepIndex, e.Junction, e.Added, net.Widths)
        log.Write ("growth",
            [ "epoch", box epoch; "step", box stepIndex; "junction", box e.Junction; "strategy", box strategyName
              "added", box e.Added; "proposed", box e.Proposed; "width", box e.Width
              "gamma", box e.Gamma; "predicted_decrease", box e.PredictedDecrease
              "predicted_decrease_error", box e.PredictedDecreaseError
              "measured_decrease", box e.MeasuredDecrease; "measured_over_predicted", box (GammaSearch.measuredOverPredicted e)
              "slope_over_predicted", box e.SlopeOverPredicted
              "held_out_z", box e.HeldOutZ
              "bottleneck", box e.Bottleneck
              "loss_before", box e.LossBefore; "loss_after", box e.LossAfter
              "gamma_bound", box e.GammaBound; "existing_spread", box e.ExistingSpread
              "new_spread", box e.NewSpread; "new_spread_median", box e.NewSpreadMedian
              "loss_evaluations", box e.LossEvaluations; "search_start", box e.SearchStart
              "borrowed_start", box e.BorrowedStart
              "statistics_seconds", box e.StatisticsSeconds; "solve_seconds", box e.SolveSeconds
              "search_seconds", box e.SearchSeconds; "apply_seconds", box e.ApplySeconds ])
        logger.LogDebug ("Growth: junction {Junction} +{Added} → width {Width}, γ={Gamma:g3} (bound {Bound:g3}), predicted {Predicted:g3}, measured {Measured:g3}, bottleneck {Bottleneck:g3}, spread new {NewSpread:g3} / existing {ExistingSpread:g3}",
                         e.Junction, e.Added, e.Width, e.Gamma, e.GammaBound, e.PredictedDecrease, e.MeasuredDecrease, e.Bottleneck, e.NewSpread, e.ExistingSpread)
        logger.LogDebug ("Growth time: junction {Junction} statistics {Statistics:f3} s, solve {Solve:f3} s, γ search {Search:f3} s ({Evaluations} loss evaluations), apply {Apply:f3} s",
                         e.Junction, e.StatisticsSeconds, e.SolveSeconds, e.SearchSeconds, e.LossEvaluations, e.ApplySeconds)
    let added = events |> List.sumBy (fun e -> e.Added)
    let evaluations = events |> List.sumBy (fun e -> e.LossEvaluations)
    if added > 0 then
        logger.LogInformation ("epoch {Epoch}: grew {Added} {Neurons} → widths {Widths}, held-out loss lowered by {Decrease:g3} ({Evaluations} loss evaluations)",
                               epoch, added, (if added = 1 then "neuron" else "neurons"), String.Join ("/", net.Widths),
                               events |> List.sumBy (fun e -> e.MeasuredDecrease), evaluations)
    else logger.LogDebug ("epoch {Epoch}: growth step added nothing ({Evaluations} loss evaluations)", epoch, evaluations)
    added
