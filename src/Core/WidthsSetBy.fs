/// What set a grown network's final widths, junction by junction: its cap, the bottleneck (growth that
/// stopped by itself) or the schedule. A run says so at its end, because widths set by MaxWidth or by
/// the schedule are not the method's promise (issue 11): a user sees whether the network found its
/// size or was given it.
module TinyGrow.Core.WidthsSetBy

open Microsoft.Extensions.Logging

/// The layer reached its MaxWidth.
[<Literal>]
let Cap = "MaxWidth"
/// Growth stopped for good (StopAfterEmptySteps) with a significance test: nothing significant was left.
[<Literal>]
let Test = "significance test"
/// Growth stopped for good without a test: the γ searches refused every proposal that many steps in a row.
[<Literal>]
let EmptySteps = "empty steps"
/// The schedule (StepsPerEpoch, UntilEpoch) ended growth while its last step still added neurons.
[<Literal>]
let ScheduleStillGrowing = "schedule, still growing"
/// The schedule ended growth after a step that added nothing (or no step ran).
[<Literal>]
let Schedule = "schedule"
/// The junction's own last `bottleneckSteps` growth events added nothing: every proposal since was
/// refused by the γ search (no amplitude lowered the held-out loss) or none was made. The bottleneck,
/// measured on held-out samples, set its width.
[<Literal>]
let Bottleneck = "bottleneck"

/// Growth events in a row that added nothing, at the end of a run, for a junction's width to count as set by the bottleneck.
let bottleneckSteps = 2

/// One reason per junction (widths and caps in junction order). `settled`: growth stopped for good;
/// `withTest`: with a significance test; `lastStepAdded`: the last growth step added a neuron;
/// `emptyInARow[j]`: junction j's growth events in a row that added nothing, up to the end (empty: not known).
let reasons (widths: int[]) (maxWidths: int[]) (settled: bool) (withTest: bool) (lastStepAdded: bool) (emptyInARow: int[]) : string[] =
    if widths.Length <> maxWidths.Length then
        invalidArg "maxWidths" $"{maxWidths.Length} caps for {widths.Length} widths."
    let ended =
        if settled then (if withTest then Test else EmptySteps)
        elif lastStepAdded then ScheduleStillGrowing
        else Schedule
    Array.init widths.Length (fun j ->
        if widths[j] >= maxWidths[j] then Cap
        elif settled then ended
        elif j < emptyInARow.Length && emptyInARow[j] >= bottleneckSteps then Bottleneck
        else ended)

/// Says at the end of a run what set each width (`reasons`, one per junction), and, for widths given
/// rather than found (a cap, a schedule that stopped while still growing), how to let the bottleneck set them.
let report (logger: ILogger) (widths: int[]) (reasons: string[]) (epochs: int) =
    logger.LogInformation ("Widths {Widths} set by: {Reasons}", System.String.Join ("/", widths), System.String.Join (" / ", reasons))
    if reasons |> Array.contains Cap then
        logger.LogInformation "A layer stopped at its cap (Model:Layers:N:MaxWidth): the cap set its width, not the bottleneck; with growth that stops by itself (docs/strategies.md), a higher cap lets the significance test set it."
    if reasons |> Array.contains ScheduleStillGrowing then
        logger.LogInformation ("The schedule ended growth while it still added neurons: for widths set by the bottleneck, run with Growth:SignificanceTest=signflip, Growth:StatisticsFrom=pass, Growth:StopAfterEmptySteps=2 and Growth:UntilEpoch={Epochs} (docs/strategies.md, growth that stops by itself; experiments/fashion-mnist-self-stopping.json).",
                               epochs)
