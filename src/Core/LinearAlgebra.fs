/// Float64 linear algebra for the closed-form solves. Pseudo-inverses go through `eigh` with a
/// *relative* cutoff (eigenvalues below cutoff·λmax are dropped): statistics scale with the data
/// and the layer, so an absolute cutoff would be wrong by orders of magnitude somewhere.
module TinyGrow.Core.LinearAlgebra

open TorchSharp
type Tensor = torch.Tensor

/// Eigenpairs of a symmetric positive semi-definite matrix whose eigenvalue exceeds cutoff·λmax.
/// Negative eigenvalues of a PSD matrix are rounding noise and are dropped too.
let eighKept (a: Tensor) (cutoff: float) : Tensor * Tensor =
    use sym = (a + a.t ()) / 2.0
    let struct (values, vectors) = torch.linalg.eigh sym
    use values = values
    use vectors = vectors
    let lmax = if values.numel () = 0L then 0.0 else (use m = values.max () in m.ToDouble ())
    let threshold = max (cutoff * lmax) 0.0
    use above = values.gt (threshold.ToScalar ())
    use keep = torch.nonzero(above).flatten ()
    if lmax <= 0.0 || keep.numel () = 0L then
        torch.zeros ([| 0L |], dtype = a.dtype, device = a.device),
        torch.zeros ([| a.shape[0]; 0L |], dtype = a.dtype, device = a.device)
    else
        values.index_select (0L, keep), vectors.index_select (1L, keep)

/// V f(λ) Vᵀ over the kept eigenpairs.
let private spectralMap (f: Tensor -> Tensor) (a: Tensor) (cutoff: float) =
    let values, vectors = eighKept a cutoff
    use values = values
    use vectors = vectors
    use scaled = vectors * (f values).unsqueeze 0L
    scaled.mm (vectors.t ())

/// Moore–Penrose pseudo-inverse of a PSD matrix.
let pinvPsd (a: Tensor) (cutoff: float) = spectralMap (fun l -> l.reciprocal ()) a cutoff

/// (A⁺)^{1/2}: the inverse square root on A's range.
let invSqrtPsd (a: Tensor) (cutoff: float) = spectralMap (fun l -> l.rsqrt ()) a cutoff

/// A factor W of a PSD matrix A's pseudo-inverse at a relative cutoff: WᵀW = A⁺. Any such W
/// whitens alike (the SVD of W·N has the same singular values for every W, and Wᵀu_k the same
/// columns up to sign), so the cheapest one that is exact for A serves.
type PsdFactor =
    /// W = L⁻¹ with A = LLᵀ, used only when every eigenvalue of A exceeds cutoff·λmax (then
    /// A⁺ = A⁻¹). Never formed: W·X and Wᵀ·X are triangular solves. About 1/25 of eigh's work.
    | Cholesky of lower: Tensor
    /// W = L⁻¹P with LLᵀ = A + c·QQᵀ and P = I − QQᵀ, Q (D×r, orthonormal) the eigenvectors of the
    /// few eigenvalues under cutoff·λmax: A⁺ = P(A + cQQᵀ)⁻¹P exactly when Q spans them. For a
    /// well-conditioned A with a handful of null directions (a dead or duplicated unit): a second
    /// Cholesky instead of eigh.
    | Deflated of lower: Tensor * nullBasis: Tensor
    /// W = Λ^{-1/2} Vᵀ over the eigenpairs `eighKept` keeps (r×D, r ≤ D): the rank-revealing fallback.
    | Eigen of rows: Tensor
    member f.Rank = match f with Cholesky l -> l.shape[0] | Deflated (l, q) -> l.shape[0] - q.shape[1] | Eigen w -> w.shape[0]
    interface System.IDisposable with
        member f.Dispose () =
            match f with
            | Cholesky t | Eigen t -> t.Dispose ()
            | Deflated (l, q) -> l.Dispose (); q.Dispose ()

/// P·X = X − Q(QᵀX).
let private project (q: Tensor) (x: Tensor) =
    use qtx = (use qt = q.t () in qt.mm x)
    use back = q.mm qtx
    x - back

/// W·X.
let factorTimes (f: PsdFactor) (x: Tensor) : Tensor =
    match f with
    | Cholesky l -> torch.linalg.solve_triangular (l, x, upper = false)
    | Deflated (l, q) -> (use px = project q x in torch.linalg.solve_triangular (l, px, upper = false))
    | Eigen w -> w.mm x

/// Wᵀ·X.
let factorTransposeTimes (f: PsdFactor) (x: Tensor) : Tensor =
    match f with
    | Cholesky l -> (use lt = l.t () in torch.linalg.solve_triangular (lt, x, upper = true))
    | Deflated (l, q) ->
        use y = (use lt = l.t () in torch.linalg.solve_triangular (lt, x, upper = true))
        project q y
    | Eigen w -> (use wt = w.t () in wt.mm x)

/// The margin by which A's estimated smallest eigenvalue must clear cutoff·λmax for the Cholesky
/// factor to be taken, and the block power iteration that estimates it. The estimate can only
/// overstate λmin (a Rayleigh–Ritz value of A⁻¹ understates its largest eigenvalue); with a random
/// 8-column start and 10 iterations, overstating it tenfold has probability below ~1e-6 even for
/// one column (Kuczyński & Woźniakowski 1992: 0.824·√D·0.1^(k−½)). Near the boundary the eigh
/// fallback runs: slower, never different.
let private choleskyMargin = 10.0
let private powerIterations = 10
let private powerBlock = 8L

/// The Rayleigh–Ritz pairs of the block inverse iteration on the SPD A = LLᵀ: estimates of A's
/// `powerBlock` smallest eigenvalues (ascending; each overstates the eigenvalue it approximates,
/// as a Ritz value of A⁻¹ understates its own) and their orthonormal vectors (D×p).
let private lowestRitzPairs (l: Tensor) : float[] * Tensor =
    let d = l.shape[0]
    let p = min d powerBlock
    use g = new torch.Generator (0x5EEDUL)
    let mutable x =
        use start = torch.randn ([| d; p |], dtype = l.dtype, generator = g)
        use onDevice = start.``to`` l.device
        let struct (q, r) = torch.linalg.qr onDevice
        r.Dispose ()
        q
    use lt = l.t ()
    for _ in 1 .. powerIterations do
        use y = torch.linalg.solve_triangular (l, x, upper = false)
        use z = torch.linalg.solve_triangular (lt, y, upper = true)
        let struct (q, r) = torch.linalg.qr z
        r.Dispose ()
        x.Dispose ()
        x <- q
    // Rayleigh–Ritz on the orthonormal block: xᵀA⁻¹x = (L⁻¹x)ᵀ(L⁻¹x).
    use y = torch.linalg.solve_triangular (l, x, upper = false)
    use gram = y.t().mm y
    let struct (ritz, vectors) = torch.linalg.eigh gram
    use ritz = ritz
    use vectors = vectors
    // Ritz values of A⁻¹ ascending are A's estimates descending: reverse both.
    use flipped = vectors.flip [| 1L |]
    let ritzVectors = x.mm flipped
    x.Dispose ()
    let values = (use c = ritz.to_type(torch.ScalarType.Float64).cpu () in c.data<float>().ToArray ()) |> Array.rev |> Array.map (fun r -> if r > 0.0 then 1.0 / r else infinity)
    values, ritzVectors

/// The smallest Cholesky pivot L_ii² of the SPD A = LLᵀ: a Schur complement, ≥ λmin. Pivots alone
/// can overstate λmin by orders of magnitude (the 1-D Laplacian has every pivot ≥ 1 and
/// λmin ≈ π²/D²); exact rank deficiency, however, always shows in a pivot.
let private smallestPivot (l: Tensor) =
    use pivots = (use d = l.diagonal () in d.square ())
    (use m = pivots.min () in m.ToDouble ())

/// A lower bound on λmax of the symmetric A (a Rayleigh quotient after a few power steps).
let private largestEigenvalueLowerBound (a: Tensor) =
    use g = new torch.Generator (0x1A3CUL)
    let mutable x =
        use start = torch.randn ([| a.shape[0]; 1L |], dtype = a.dtype, generator = g)
        start.``to`` a.device
    for _ in 1 .. powerIterations do
        use y = a.mm x
        let norm = (use n = y.norm () in n.ToDouble ())
        x.Dispose ()
        x <- (if norm > 0.0 then y / norm else y.clone ())
    use ax = a.mm x
    let q = (use v = (x * ax).sum () in v.ToDouble ())
    x.Dispose ()
    q

/// Deflation (see Deflated) when A = LLᵀ has a few eigenvalues clearly under cutoff·λmax and the rest
/// clearly above `threshold` (choleskyMargin·cutoff·‖A‖_F, the plain Cholesky path's test): the Ritz
/// values under cutoff·(a lower bound on λmax) are dropped, which eigh would drop too (each overstates
/// its eigenvalue), and the next Ritz value must clear the threshold, the same probabilistic test the
/// plain path applies to the smallest. None (then eigh decides) when a Ritz value lies between, when
/// nothing is to be dropped, or when the whole block would be.
let private deflate (sym: Tensor) (l: Tensor) (cutoff: float) (threshold: float) : PsdFactor option =
    // Many small pivots mean many small eigenvalues (a rank far below D, e.g. an image's input
    // covariance): more than the block can hold, so skip the iteration and let eigh decide.
    let smallPivots =
        use pivots = (use d = l.diagonal () in d.square ())
        use small = pivots.le (threshold.ToScalar ())
        small.sum().item<int64> ()
    if smallPivots >= powerBlock then None
    else
        let values, vectors = lowestRitzPairs l
        use vectors = vectors
        let lmaxLower = largestEigenvalueLowerBound sym
        let dropped = values |> Array.takeWhile (fun v -> v < cutoff * lmaxLower) |> Array.length
        if dropped = 0 || dropped >= values.Length || not (values[dropped] > threshold) || not (lmaxLower > 0.0) then None
        else
            let q = vectors.narrow(1L, 0L, int64 dropped).contiguous ()
            use lifted = (use qqt = q.mm (q.t ()) in sym + qqt * lmaxLower)
            let struct (ld, info) = torch.linalg.cholesky_ex lifted
            use info = info
            if info.item<int> () = 0 then Some (Deflated (ld, q))
            else
                ld.Dispose ()
                q.Dispose ()
                None

/// An upper bound on λmin of the SPD A = LLᵀ: the smallest pivot, and the smallest Ritz value of
/// the block inverse iteration when the pivot cannot decide.
let private smallestEigenvalueBound (l: Tensor) (threshold: float) =
    let pivotMin = smallestPivot l
    if not (pivotMin > threshold) then pivotMin
    else
        let values, vectors = lowestRitzPairs l
        vectors.Dispose ()
        min pivotMin values[0]

/// W with WᵀW = A⁺ (A PSD, `cutoff` relative to λmax): the Cholesky factor when A's smallest
/// eigenvalue clears the cutoff by `choleskyMargin` (then nothing is dropped and A⁺ = A⁻¹); the
/// deflated Cholesky factor when a few eigenvalues lie clearly under the cutoff and the rest
/// clearly above; otherwise the eigh factor over the kept eigenpairs. λmax is bounded above by
/// ‖A‖_F, so the tests err towards the fallback.
let psdFactor (a: Tensor) (cutoff: float) : PsdFactor =
    use sym = (a + a.t ()) / 2.0
    let struct (l, info) = torch.linalg.cholesky_ex sym
    use info = info
    let lmaxBound = (use n = sym.norm () in n.ToDouble ())
    let threshold = choleskyMargin * cutoff * lmaxBound
    let positive = info.item<int> () = 0 && lmaxBound > 0.0
    if positive && smallestEigenvalueBound l threshold > threshold then Cholesky l
    else
        let deflated = if positive then deflate sym l cutoff threshold else None
        l.Dispose ()
        match deflated with
        | Some f -> f
        | None ->
            let values, vectors = eighKept sym cutoff
            use values = values
            use vectors = vectors
            use scale = values.rsqrt ()
            use scaled = vectors * scale.unsqueeze 0L
            Eigen (scaled.t().contiguous ())

/// W itself (Rank×D for eigh, D×D otherwise), for a factor kept beyond one solve.
let materialise (f: PsdFactor) : Tensor =
    match f with
    | Eigen w -> w.clone ()
    | Cholesky l | Deflated (l, _) ->
        use eye = torch.eye (l.shape[0], dtype = l.dtype, device = l.device)
        factorTimes f eye

/// The path a factor took, for logs and benches: "cholesky", "deflated (rank r of D)", "eigh (rank r of D)".
let describe (f: PsdFactor) =
    match f with
    | Cholesky _ -> "cholesky"
    | Deflated (l, _) -> $"deflated (rank {f.Rank} of {l.shape[0]})"
    | Eigen w -> $"eigh (rank {w.shape[0]} of {w.shape[1]})"

/// A⁺X = Wᵀ(W X) without forming A⁺ (a Cholesky solve, or V Λ⁻¹ Vᵀ X on the kept eigenpairs).
let solvePsd (f: PsdFactor) (x: Tensor) : Tensor =
    match f with
    | Cholesky l -> x.cholesky_solve (l, upper = false)
    | Deflated (l, q) ->
        use px = project q x
        use solved = px.cholesky_solve (l, upper = false)
        project q solved
    | Eigen _ ->
        use wx = factorTimes f x
        factorTransposeTimes f wx

/// Thin SVD, singular values descending: U (m×r), s (r), V (n×r).
let thinSvd (a: Tensor) : Tensor * Tensor * Tensor =
    let struct (u, s, vh) = torch.linalg.svd (a, fullMatrices = false)
    use vh = vh
    u, s, vh.t().contiguous ()

/// Nullable tensors for C# contracts (`Tensor?`) under F# nullness checking.
module Null =
    let from (t: Tensor) : Tensor | null = t
    let none : Tensor | null = null
