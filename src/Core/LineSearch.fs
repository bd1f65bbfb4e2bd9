/// The γ line search itself, a function of a loss: the √2 grid γ walks on, the walk up while the loss falls and
/// down when γ₁ is no better, the loss model that jumps ahead, and when a decrease counts (DESIGN §4.6). GammaSearch
/// applies it to a junction's candidate on held-out samples.
module TinyGrow.Core.LineSearch

open System

/// What a γ search found: γ, the loss there and at 0, and how many loss evaluations it took.
type SearchResult =
    { Gamma: float
      Loss: float
      Loss0: float
      Evaluations: int
      /// The smallest γ > 0 evaluated (+∞: none).
      Lowest: float }

/// The point of the search's grid (1·√2^k) nearest to `gamma` (> 0).
let gridPoint (gamma: float) = 2.0 ** (Math.Round (2.0 * Math.Log2 gamma) / 2.0)

/// The first γ a search from `start` evaluates: the grid point of `start` below `gammaMax`; a start
/// that is not a positive finite number means 1 (the cold search).
let firstGamma (start: float) (gammaMax: float) =
    min gammaMax (if start > 0.0 && Double.IsFinite start then gridPoint start else 1.0)

/// Grid points a γ search walks down from γ₁ looking for any decrease before it refuses the proposal:
/// 4 is a factor 4 in γ, 16 in the γ² decrease of the first order. A proposal that lowers the loss at
/// none of them is refused (γ = 0). Walking on to 2⁻¹² of γ₁ (as before) cost 26 loss evaluations per
/// refusal; measured over 711 growth steps (Fashion-MNIST and CIFAR-10-shaped inputs, docs/notebook/2026-11-30-statistics-from-training.md),
/// a fifth of the steps were refused, their searches held 40 % of all evaluations, and of the accepted
/// γ only 1.8 % lay more than 4 grid points below γ₁.
let refusalSteps = 4

/// Relative loss decrease below which a candidate is treated as no better than γ = 0.
let acceptanceMargin = 1e-6

/// γ at the minimum of the loss model L(γ) = L(0) − a·γ^p + c·γ^2p (first order and the curvature of the loss along
/// the candidate, in t = γ^p) through L(0) and two evaluated points (γ1, L1), (γ2, L2), γ1 < γ2; NaN when the model
/// has no minimum there (a ≤ 0 or c ≤ 0). p = the proposal's AmplitudePower: a unit proposal changes B's output
/// linearly in γ (p = 1); a scaled one's new features are γ²·ωσ(αx) to first order (p = 2).
let modelMinimum (power: int) (l0: float) (g1: float) (l1: float) (g2: float) (l2: float) =
    let t1, t2 = g1 ** float power, g2 ** float power
    let d1, d2 = l0 - l1, l0 - l2
    let den = t1 * t2 * (t2 - t1)
    let a = (d1 * t2 * t2 - d2 * t1 * t1) / den
    let c = (d1 * t2 - d2 * t1) / den
    if a > 0.0 && c > 0.0 && Double.IsFinite a && Double.IsFinite c then (a / (2.0 * c)) ** (1.0 / float power) else nan

/// lineSearchFrom, with the loss model (modelMinimum, `power` > 0; 0: the walk alone) saving the evaluations of a long
/// way up: after a step up that lowered the loss, the model's minimum through the last two points, when it lies at
/// least two grid points further up, is evaluated next; if it is below the last point the search goes on from there
/// (up while the loss falls, else down while it falls), if not it walks on as without the model. The jump only ever
/// moves to a lower loss, so on a loss unimodal in γ the search ends on the walk's γ: one evaluation more when the
/// jump overshoots, several fewer when the answer lies far up (a cold search from 1 to 64 walks 12 grid points). The
/// walk down is not skipped on the model's word: on a loss that saturates (L = e^(−x) + 0.01x) a quadratic through L(0)
/// and two points past the minimum puts it above them, and skipping the step down there kept 86 % of the decrease.
let lineSearchModel (power: int) (start: float) (gammaMax: float) (lossAt: float -> float) (maxSteps: int) : SearchResult =
    let factor = sqrt 2.0
    let mutable evaluations = 0
    let mutable lowest = infinity
    // A γ the walk reaches again after a jump that overshot is not evaluated twice.
    let seen = Collections.Generic.Dictionary<float, float> ()
    let lossAt g =
        match seen.TryGetValue g with
        | true, l -> l
        | _ ->
            evaluations <- evaluations + 1
            if g > 0.0 then lowest <- min lowest g
            let l = lossAt g
            seen[g] <- l
            l
    let l0 = lossAt 0.0
    let result gamma loss = { Gamma = gamma; Loss = loss; Loss0 = l0; Evaluations = evaluations; Lowest = lowest }
    if not (gammaMax > 0.0) then result 0.0 l0
    else
        /// Moves γ by `step` while the loss keeps falling, never above gammaMax. `mayJump`: going up, the model may
        /// jump ahead once.
        let rec follow (step: float) gamma loss k mayJump =
            if k >= maxSteps || (step > 1.0 && gamma >= gammaMax) then gamma, loss
            else
                // Snapped to the grid so that every start walks the same points 2^(k/2), bit for bit.
                let g = min gammaMax (gridPoint (gamma * step))
                let next = lossAt g
                if next < loss then
                    let jump =
                        if mayJump && power > 0 && step > 1.0 && g < gammaMax then
                            let m = modelMinimum power l0 gamma loss g next
                            if m >= g * step * step then min gammaMax (gridPoint m) else nan
                        else nan
                    if jump > 1.01 * g * step && k + 1 < maxSteps then
                        let lj = lossAt jump
                        if lj < next then around jump lj false else follow step g next (k + 1) false
                    else follow step g next (k + 1) mayJump
                else gamma, loss
        /// From a γ whose loss is below L(0): up while the loss falls; if not even one step, down.
        and around g l mayJump =
            let gamma, loss = follow factor g l 0 mayJump
            // Stopped where it started: the best γ may lie below it (L barely under L(0)).
            if gamma = g then follow (1.0 / factor) g l 0 false else gamma, loss
        let g1 = firstGamma start gammaMax
        let l1 = lossAt g1
        if l1 < l0 then
            let gamma, loss = around g1 l1 true
            result gamma loss
        else
            // Down two grid points at a time: a loss below L(0) on an interval from 0 (unimodal in γ) is below it at
            // γ/2 whenever it is at γ/√2, so the point between is evaluated only once γ/2 is below L(0), where the walk
            // of one point at a time would have found it first. The same γ on such losses, and a refusal in
            // refusalSteps/2 evaluations below γ₁ instead of refusalSteps.
            let limit = min maxSteps refusalSteps
            let rec down gamma k =
                if k >= limit then 0.0, l0
                else
                    let g = gridPoint (gamma / factor)
                    if k + 2 > limit then
                        let l = lossAt g
                        if l < l0 then follow (1.0 / factor) g l k false else 0.0, l0
                    else
                        let g2 = gridPoint (g / factor)
                        let l2 = lossAt g2
                        if l2 < l0 then
                            let l = lossAt g
                            if l < l0 then follow (1.0 / factor) g l k false else follow (1.0 / factor) g2 l2 (k + 1) false
                        else down g2 (k + 2)
            let gamma, loss = down g1 0
            result gamma loss

/// γ search on the √2 grid 2^(k/2) (and gammaMax) below `gammaMax` (+∞: unbounded) starting at `start`: γ = 0 is always a
/// choice (it means "add nothing now"). From γ₁ = min(grid point of `start`, gammaMax) the search
/// goes up while the loss keeps falling (never capped: the last step up lands on gammaMax itself
/// when the grid would cross it), or, if the next γ is no better, down while it keeps falling; if
/// γ₁ is no better than γ = 0 it goes down (at most `refusalSteps` grid points, two at a time) until the loss falls
/// below the loss at 0, then on down while it keeps falling (the first γ below L(0) can hold a small part of the available decrease).
/// Every start on the grid ends on the same γ when the loss is unimodal in γ; a start near the answer
/// (e.g. the γ chosen for the junction last time) saves the evaluations of the way there from 1.
/// Without the loss model: lineSearchModel with power 0.
let lineSearchFrom (start: float) (gammaMax: float) (lossAt: float -> float) (maxSteps: int) : SearchResult =
    lineSearchModel 0 start gammaMax lossAt maxSteps

/// The cold search: lineSearchFrom γ₁ = 1.
let lineSearchWithin (gammaMax: float) (lossAt: float -> float) (maxSteps: int) : SearchResult =
    lineSearchFrom 1.0 gammaMax lossAt maxSteps

/// The unbounded search. Returns (γ, loss at γ, loss at 0).
let lineSearch (lossAt: float -> float) (maxSteps: int) : float * float * float =
    let r = lineSearchWithin infinity lossAt maxSteps
    r.Gamma, r.Loss, r.Loss0
