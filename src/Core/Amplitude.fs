/// The amplitude bound (DESIGN §4.6): new neurons must stay trainable. A new neuron k's
/// pre-activation is γ·α_kᵀb̃, linear in γ, so its spread on held-out samples at γ = 1 fixes the
/// largest γ that keeps every new neuron's spread within `ratio` times the existing neurons' typical
/// spread. The γ line search then runs below that bound. See docs/growth.md for the why.
///
/// Spread of a channel = root mean square of its pre-activation over the held-out (sample, position)
/// rows: for tanh (and GELU, SELU) what saturates a unit is |z| — its offset as much as its
/// spread — so the RMS about 0, not the standard deviation, is what must stay bounded.
module TinyGrow.Core.Amplitude

open TorchSharp
open TinyGrow.Abstractions

/// The bound's default: a new neuron may be at most twice as large as the existing neurons' median.
let defaultRatio = 2.0

/// Pre-activations (σ's input, channels on dimension 1) of the junction's A for A's input `aInput`:
/// through A's normalisation when the junction exposes it (IPreActivations), else A's raw output.
let preActivations (junction: IJunction) (aInput: torch.Tensor) : torch.Tensor =
    match junction with
    | :? Junctions.IPreActivations as p -> p.PreActivations aInput
    | _ -> junction.A.Forward aInput

/// Root mean square of each channel (dimension 1) over every other dimension, float64.
let channelRms (z: torch.Tensor) : float[] =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope ()
    let channels = z.shape[1]
    let perChannel = z.transpose(0L, 1L).reshape(channels, -1L).to_type torch.ScalarType.Float64
    let rms = perChannel.square().mean([| 1L |]).sqrt().cpu ()
    rms.data<float>().ToArray ()

let median (xs: float[]) =
    if xs.Length = 0 then nan
    else
        let s = Array.sort xs
        let m = s.Length / 2
        if s.Length % 2 = 1 then s[m] else 0.5 * (s[m - 1] + s[m])

/// Spreads of a junction's pre-activations on held-out samples: the existing channels' median, and
/// the new channels' at γ = 1 (largest and median).
type Spreads =
    { Existing: float
      NewLargestAtOne: float
      NewMedianAtOne: float }

/// Spreads from the channels' RMS: the existing ones' median, the new ones' largest and median.
let private spreadsOf (existing: float[]) (fresh: float[]) =
    { Existing = median existing
      NewLargestAtOne = (if fresh.Length = 0 then 0.0 else Array.max fresh)
      NewMedianAtOne = median fresh }

/// Whether the junction's activation can saturate or die (every one but the identity).
let isBounded (junction: IJunction) = junction.A.Activation <> "identity"

/// The spreads of `proposal`'s new channels (applied at γ = 1, then undone) and of A's existing
/// channels, on A's held-out input `aInput`. With a normalisation after A the new channels pass
/// γ·αᵀb̃ through (up to ε), so their spread is linear in γ too.
let measure (junction: IJunction) (proposal: NeuronProposal) (statistics: JunctionStatistics) (aInput: torch.Tensor) : Spreads =
    use _ = torch.no_grad ()
    use scope = torch.NewDisposeScope ()
    let existing = junction.A.OutputWidth
    let applied = junction.Apply (proposal, 1.0, statistics)
    let rms =
        try channelRms (preActivations junction aInput)
        finally applied.Undo ()
    spreadsOf (Array.take existing rms) (Array.skip existing rms)

/// `measure`, with A's existing channels' pre-activations on `aInput` given (`existingOutput`, e.g. kept by the γ
/// search's probe forward): only the new channels are computed (IGrowableLayer.ForwardOutputs). Without a
/// normalisation after A, A's output is the pre-activation, so the spreads are `measure`'s to float32 rounding (the
/// existing channels come from a product of another shape); otherwise `measure` itself. (Until this asked for the
/// normalisation itself, every chain junction, which all expose IPreActivations, took `measure`: A's whole product
/// again, 2.2 of a 9 ms search on an MLP's first junction.)
let measureGiven (junction: IJunction) (proposal: NeuronProposal) (statistics: JunctionStatistics) (aInput: torch.Tensor)
                 (existingOutput: torch.Tensor | null) : Spreads =
    match existingOutput with
    | Null -> measure junction proposal statistics aInput
    | NonNull kept when (Junctions.normalisationOf junction).IsSome || kept.shape[0] <> aInput.shape[0]
                        || kept.shape[1] <> int64 junction.A.OutputWidth ->
        measure junction proposal statistics aInput
    | NonNull kept ->
        use _ = torch.no_grad ()
        use scope = torch.NewDisposeScope ()
        let existing = junction.A.OutputWidth
        let applied = junction.Apply (proposal, 1.0, statistics)
        let fresh =
            try channelRms (junction.A.ForwardOutputs (aInput, existing))
            finally applied.Undo ()
        spreadsOf (channelRms kept) fresh

/// The largest γ whose new neurons all have a spread ≤ ratio × the existing median; +∞ when nothing
/// bounds it (ratio ≤ 0: the bound is off; no new neuron, or new neurons silent on these samples).
let gammaBound (ratio: float) (s: Spreads) =
    if ratio <= 0.0 || not (s.NewLargestAtOne > 0.0) then infinity
    else ratio * s.Existing / s.NewLargestAtOne
