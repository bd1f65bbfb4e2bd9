/// The closed forms of TINY (DESIGN §4), float64, from a junction's statistics:
///   δ = (S⁺M)ᵀ                   best change of B's existing weights (least squares of g on b)
///   Δ = tr(Mᵀ S⁺ M)              first-order loss decrease of W_B ← W_B − γ²δ
///   bottleneck = tr(E) − Δ       what no change of B's weights can express
///   N = −(M2 − P δᵀ)             Σ b̃ v_projᵀ / n with v_proj = −(g − δ b)
///   S2^{-1/2} N = U diag(λ) Vᵀ   α_k = √λ_k S2^{-1/2} u_k,  ω_k = √λ_k v_k
/// S2^{-1/2} may be any W with WᵀW = S2⁺ (LinearAlgebra.psdFactor: L⁻¹ from Cholesky, eigh only
/// when S2 is singular at the cutoff): λ_k and α_k do not depend on the choice.
/// A reader meets the least-squares step first, then the new-neuron step built on it.
module TinyGrow.Core.Bottleneck

open TorchSharp
open TinyGrow.Abstractions
open TinyGrow.Core.LinearAlgebra

/// The best update of B's existing weights and what it leaves unexplained.
type ExistingWeightsUpdate =
    { /// δ, out×D1 (bias column last when B has a bias).
      Delta: Tensor
      /// Δ = tr(Mᵀ S⁺ M) ≥ 0.
      Decrease: float
      /// tr(E) − Δ ≥ 0 (up to rounding).
      Bottleneck: float }

/// The rounding level, relative to the largest eigenvalue, of a D×D statistic formed by products
/// of `RowsPerProduct` rows in the statistics' unit roundoff: the numerical-rank tolerance D·u plus
/// the √rows growth of a sum's rounding. Measured on float32 rows (D = 4, 1,024 rows): the null
/// eigenvalue comes out at 1.1e-7·λmax; this level is 2.1e-6.
let roundingLevel (stats: JunctionStatistics) (size: int64) =
    (float size + sqrt (float stats.RowsPerProduct)) * stats.UnitRoundoff

/// The relative eigenvalue cutoff for a D×D statistic: the configured one, but never below the
/// rounding level: directions under it are rounding, and S2^{-1/2} would amplify them into huge weights.
let effectiveCutoff (configured: float) (stats: JunctionStatistics) (size: int64) =
    max configured (roundingLevel stats size)

/// δ, Δ and the bottleneck from S⁺M, S⁺ applied through a PSD factor (a Cholesky solve when S is
/// well conditioned at the cutoff, eigh otherwise).
let existingWeightsUpdate (stats: JunctionStatistics) (cutoff: float) : ExistingWeightsUpdate =
    use factor = psdFactor stats.S (effectiveCutoff cutoff stats stats.S.shape[0])
    use sPinvM = solvePsd factor stats.M
    let decrease = (use product = stats.M * sPinvM in product.sum().ToDouble ())
    { Delta = sPinvM.t().contiguous ()
      Decrease = decrease
      Bottleneck = stats.TraceE - decrease }

/// The same through S⁺ formed by `eigh` (the path before issue 10): the reference the tests and
/// the bench compare against.
let existingWeightsUpdateEigh (stats: JunctionStatistics) (cutoff: float) : ExistingWeightsUpdate =
    use sPinv = pinvPsd stats.S (effectiveCutoff cutoff stats stats.S.shape[0])
    use sPinvM = sPinv.mm stats.M
    let decrease = (use product = stats.M * sPinvM in product.sum().ToDouble ())
    { Delta = sPinvM.t().contiguous ()
      Decrease = decrease
      Bottleneck = stats.TraceE - decrease }

/// P δᵀ (…×D2×out), or per tap when b̃ carries T taps (full conv mode, DESIGN §4.3): P is
/// …×D2×(T·D1) in tap-major blocks and the result …×D2×(T·out), laid out like M2. Leading
/// dimensions (groups) pass through.
let pTimesDeltaT (p: Tensor) (delta: Tensor) : Tensor =
    let d1, out = delta.shape[1], delta.shape[0]
    let last = p.dim () - 1L
    let taps = p.shape[int last] / d1
    if taps = 1L then p.matmul (delta.t ())
    else
        let lead = p.shape[.. int last - 1]
        use perTap = p.reshape (Array.append lead [| taps; d1 |])
        use product = perTap.matmul (delta.t ())
        product.reshape (Array.append lead [| taps * out |])

/// N = −(M2 − P δᵀ): the projected desired update seen from A's inputs. With δ = 0 it is −M2
/// (the unprojected gradient, as GradMax uses it).
let projectedN (stats: JunctionStatistics) (delta: Tensor) : Tensor =
    let pdt = pTimesDeltaT stats.P delta
    pdt.sub_ stats.M2

/// New neurons, all of them, from the SVD of S2^{-1/2} N; sorted by λ descending.
type NeuronDirections =
    { /// K×D2: row k is α_k (A's new row, bias last).
      FanIn: Tensor
      /// out×K: column k is ω_k (B's new column).
      FanOut: Tensor
      /// λ_k, descending.
      Lambdas: float[] }

/// α_k = √λ_k Wᵀu_k, ω_k = √λ_k v_k from the thin SVD W·N = U diag(λ) Vᵀ. With a factor of
/// rank r < D2 there are min(r, out) directions: the others would have λ = 0.
let private fromSvd (wn: Tensor) (back: Tensor -> Tensor) (d2: int64) : NeuronDirections =
    if wn.shape[0] = 0L || wn.shape[1] = 0L then
        { FanIn = torch.zeros ([| 0L; d2 |], dtype = wn.dtype, device = wn.device)
          FanOut = torch.zeros ([| wn.shape[1]; 0L |], dtype = wn.dtype, device = wn.device)
          Lambdas = [||] }
    else
        let u, s, v = thinSvd wn
        use u = u
        use s = s
        use v = v
        use sq = s.sqrt ()
        use wu = back u
        { FanIn = (wu * sq.unsqueeze 0L).t().contiguous ()
          FanOut = v * sq.unsqueeze 0L
          Lambdas = (use onCpu = s.cpu () in onCpu.data<float>().ToArray ()) }

/// New neurons from a factor W of S2⁺ (WᵀW = S2⁺), e.g. one kept from an earlier step.
let neuronDirectionsWith (factor: PsdFactor) (n: Tensor) : NeuronDirections =
    use wn = factorTimes factor n
    fromSvd wn (factorTransposeTimes factor) n.shape[0]

/// `whiten = false` replaces S2^{-1/2} by the identity (no covariance: GradMax-like directions).
/// Whitening uses `psdFactor`: Cholesky when S2 is well conditioned at `cutoff`, eigh otherwise.
let neuronDirections (s2: Tensor) (n: Tensor) (cutoff: float) (whiten: bool) : NeuronDirections =
    if whiten then
        use factor = psdFactor s2 cutoff
        neuronDirectionsWith factor n
    else fromSvd n (fun u -> u.clone ()) n.shape[0]

/// The same through S2^{-1/2} formed by `eigh` (the path before issue 10): the reference the tests
/// and the bench compare against.
let neuronDirectionsEigh (s2: Tensor) (n: Tensor) (cutoff: float) : NeuronDirections =
    use r = invSqrtPsd s2 cutoff
    use rn = r.mm n
    fromSvd rn (fun u -> r.mm u) n.shape[0]

/// The first K directions (rows of FanIn, columns of FanOut).
let take (k: int) (d: NeuronDirections) : NeuronDirections =
    let k = min k d.Lambdas.Length
    { FanIn = d.FanIn.narrow(0L, 0L, int64 k).contiguous ()
      FanOut = d.FanOut.narrow(1L, 0L, int64 k).contiguous ()
      Lambdas = Array.sub d.Lambdas 0 k }

/// c = Σ_k α_kᵀ P δᵀ ω_k: the cross term the first-order prediction ignores. Since
/// −M2 = N − Pδᵀ and α_kᵀ N ω_k = λ_k², the exact first-order decrease is
/// γ²(Δ + σ′(0)(Σλ_k² − c)). c is zero for a linear σ (v_proj is orthogonal to anything B's
/// inputs can express); the tests measure its size for a nonlinear σ.
let crossTerm (stats: JunctionStatistics) (delta: Tensor) (d: NeuronDirections) : float =
    use pdt = pTimesDeltaT stats.P delta
    use a = d.FanIn.mm pdt
    use terms = a * d.FanOut.t ()
    terms.sum().ToDouble ()

/// S2_g·Θ for every group g (G×D2×out): from JunctionStatistics.GroupS2, or as R_gᵀ(R_gΘ) from its
/// rows (GroupRows, float64 products: no D2×D2 matrix is formed).
let groupS2Times (stats: JunctionStatistics) (theta: Tensor) : Tensor =
    match stats.GroupS2, stats.GroupRows with
    | NonNull gs2, _ -> gs2.matmul theta
    | _, NonNull rows ->
        torch.stack ([| for r in rows ->
                            use r64 = r.to_type torch.ScalarType.Float64
                            use projected = r64.mm theta
                            r64.t().mm projected |], 0L)
    | _ -> invalidArg (nameof stats) "The statistics keep no per-group S2 (neither GroupS2 nor GroupRows)."

/// The noise floor of the singular values λ_k of W·N (DESIGN §4.1: a direction is real only if λ_k
/// clearly exceeds the noise of N estimated across batches), by a sign-flip null over groups of
/// batches. N = Σ_b̃ v_projᵀ/n is the moment of a least-squares fit of v_proj on b̃, Θ = S2⁺N; its
/// sampling noise is that of Σ b̃ rᵀ/n with r = v_proj − Θᵀb̃ the fit's residual (the signal's own
/// fluctuation, b̃b̃ᵀΘ from group to group, is not noise of the directions: it is absorbed by the
/// fit). With N_g the group's share (N_g = −(M2_g − P_g δᵀ), or −M2_g without δ), the residual
/// moments D_g = W(N_g − S2_g Θ) sum to zero; for random signs ε, Z_ε = c·Σ_g ε_g D_g has about the
/// covariance of the noise of W·N, with c = √(G/(G−1))·√(n/(n−r)) (N is estimated from the same
/// groups; the fit uses r = rank S2 degrees of freedom of the n samples). The floor is the
/// `confidence` quantile of ‖Z_ε‖₂ over `draws` draws. Since σ_{r+1}(S + Z) ≤ ‖Z‖₂ (Weyl), a
/// direction beyond the rank of the true signal S passes a floor at quantile q with probability about
/// 1 − q. None when the statistics carry fewer than two groups or no more samples than r.
/// `factor`: W (None: W = I, unwhitened directions; the fit still uses S2⁺ at `cutoff`).
let noiseFloor (stats: JunctionStatistics) (delta: Tensor option) (factor: PsdFactor option) (cutoff: float)
               (draws: int) (confidence: float) (generator: torch.Generator | null) : float option =
    let hasGroupS2 = not (isNull stats.GroupS2) || not (isNull stats.GroupRows)
    match stats.GroupM2, stats.GroupP, stats.GroupFractions with
    | null, _, _ | _, null, _ | _, _, null -> None
    | _ when not hasGroupS2 -> None
    | gm2, gp, fractions when fractions.Length >= 2 && draws >= 1 ->
        use scope = torch.NewDisposeScope ()
        let g = int64 fractions.Length
        let ng =
            match delta with
            | Some d -> (pTimesDeltaT gp d).sub_ gm2              // G×D2×out (×taps in full conv mode)
            | None -> gm2.neg ()
        let n = ng.sum 0L
        let fit = match factor with Some w -> w | None -> psdFactor stats.S2 cutoff
        let rank = fit.Rank
        let theta = solvePsd fit n                                // S2⁺N, D2×out
        if factor.IsNone then (fit :> System.IDisposable).Dispose ()
        if float stats.Samples <= float rank then None
        else
            let deviation = ng - groupS2Times stats theta         // G×D2×out; Σ_g = 0 when S2 is the pass's own
            let d2, out = deviation.shape[1], deviation.shape[2]
            let y =
                match factor with
                | Some w ->
                    let flat = deviation.permute(1L, 0L, 2L).reshape (d2, g * out)
                    let wf = factorTimes w flat
                    wf.reshape(wf.shape[0], g, out).permute (1L, 0L, 2L)
                | None -> deviation
            let r = y.shape[1]
            let u = torch.rand ([| int64 draws; g |], dtype = torch.float64, generator = generator)
            let heads = (u.ge (0.5.ToScalar ())).to_type torch.float64
            let signs = (heads * 2.0 - 1.0).``to`` ng.device
            let z = signs.mm(y.reshape (g, r * out)).reshape (int64 draws, r, out)
            let top = (torch.linalg.svdvals z).select (1L, 0L)
            let values = (use c = top.cpu () in c.data<float>().ToArray ()) |> Array.sort
            let index = min (draws - 1) (max 0 (int (ceil (confidence * float draws)) - 1))
            let samples = float stats.Samples
            Some (values[index] * sqrt (float g / float (g - 1L)) * sqrt (samples / (samples - float rank)))
    | _ -> None
