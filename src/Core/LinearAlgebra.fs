/// Float64 linear algebra for the closed-form solves. Pseudo-inverses go through `eigh` with a
/// *relative* cutoff (eigenvalues below cutoff·λmax are dropped): statistics scale with the data
/// and the layer, so an absolute cutoff would be wrong by orders of magnitude somewhere.
module TinyGrow.Core.LinearAlgebra

open TorchSharp
type Tensor = torch.Tensor

/// eighKept (below) of a matrix that is symmetric bit for bit, as (A + Aᵀ)/2 is (the two entries of a
/// pair are the same float sum): symmetrising it again would only copy it.
let private eighKeptSymmetric (sym: Tensor) (cutoff: float) : Tensor * Tensor =
    let struct (values, vectors) = torch.linalg.eigh sym
    use values = values
    use vectors = vectors
    let lmax = if values.numel () = 0L then 0.0 else (use m = values.max () in m.ToDouble ())
    let threshold = max (cutoff * lmax) 0.0
    use above = values.gt (threshold.ToScalar ())
    use keep = torch.nonzero(above).flatten ()
    if lmax <= 0.0 || keep.numel () = 0L then
        torch.zeros ([| 0L |], dtype = sym.dtype, device = sym.device),
        torch.zeros ([| sym.shape[0]; 0L |], dtype = sym.dtype, device = sym.device)
    else
        values.index_select (0L, keep), vectors.index_select (1L, keep)

/// Eigenpairs of a symmetric positive semi-definite matrix whose eigenvalue exceeds cutoff·λmax.
/// Negative eigenvalues of a PSD matrix are rounding noise and are dropped too.
let eighKept (a: Tensor) (cutoff: float) : Tensor * Tensor =
    use sym = (a + a.t ()) / 2.0
    eighKeptSymmetric sym cutoff

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
    /// W = Λ^{-1/2} Vᵀ over the eigenpairs `eighKept` keeps (r×D, r ≤ D): the rank-revealing fallback.
    | Eigen of rows: Tensor
    member f.Rank = match f with Cholesky l -> l.shape[0] | Eigen w -> w.shape[0]
    interface System.IDisposable with
        member f.Dispose () = match f with Cholesky t | Eigen t -> t.Dispose ()

/// W·X.
let factorTimes (f: PsdFactor) (x: Tensor) : Tensor =
    match f with
    | Cholesky l -> torch.linalg.solve_triangular (l, x, upper = false)
    | Eigen w -> w.mm x

/// Wᵀ·X.
let factorTransposeTimes (f: PsdFactor) (x: Tensor) : Tensor =
    match f with
    | Cholesky l -> (use lt = l.t () in torch.linalg.solve_triangular (lt, x, upper = true))
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

/// An upper bound on λmin of the SPD A = LLᵀ: the smallest Cholesky pivot L_ii² (a Schur
/// complement, ≥ λmin) and 1/ρ, ρ the block power iteration's Rayleigh–Ritz estimate of
/// λmax(A⁻¹) = 1/λmin. Pivots alone can overstate λmin by orders of magnitude (the 1-D Laplacian
/// has every pivot ≥ 1 and λmin ≈ π²/D²); exact rank deficiency, however, always shows in a pivot,
/// which is tested first so that the iteration runs only when it can change the answer.
let private smallestEigenvalueBound (l: Tensor) (threshold: float) =
    use pivots = (use d = l.diagonal () in d.square ())
    let pivotMin = (use m = pivots.min () in m.ToDouble ())
    if not (pivotMin > threshold) then pivotMin
    else
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
        x.Dispose ()
        use gram = y.t().mm y
        use ritz = torch.linalg.eigvalsh gram
        let rho = (use m = ritz.max () in m.ToDouble ())
        if rho > 0.0 then min pivotMin (1.0 / rho) else pivotMin

/// W with WᵀW = A⁺ (A PSD, `cutoff` relative to λmax): the Cholesky factor when A's smallest
/// eigenvalue clears the cutoff by `choleskyMargin` (then nothing is dropped and A⁺ = A⁻¹),
/// otherwise the eigh factor over the kept eigenpairs. λmax is bounded above by ‖A‖_F, so
/// the test errs towards the fallback.
let psdFactor (a: Tensor) (cutoff: float) : PsdFactor =
    use sym = (a + a.t ()) / 2.0
    let struct (l, info) = torch.linalg.cholesky_ex sym
    use info = info
    let lmaxBound = (use n = sym.norm () in n.ToDouble ())
    let threshold = choleskyMargin * cutoff * lmaxBound
    if info.item<int> () = 0 && lmaxBound > 0.0 && smallestEigenvalueBound l threshold > threshold then Cholesky l
    else
        l.Dispose ()
        let values, vectors = eighKeptSymmetric sym cutoff
        use values = values
        use vectors = vectors
        use scale = values.rsqrt ()
        use scaled = vectors * scale.unsqueeze 0L
        Eigen (scaled.t().contiguous ())

/// W with WᵀW = S2⁺ for S2 = RᵀR from the rows R (n×D2, n < D2: S2 has rank ≤ n), at a relative
/// cutoff, without S2's D2×D2 eigh: Rᵀ = QT (thin QR, Q D2×n), so S2 = Q(TTᵀ)Qᵀ and the eigenpairs
/// (λ, u) of the n×n TTᵀ give S2's as (λ, Qu); W = Λ^{-1/2}(QU)ᵀ over those above cutoff·λmax (r×D2).
/// TTᵀ carries S2's nonzero spectrum, so rounding enters as in S2's own eigh. In R's dtype.
let rowsFactor (rows: Tensor) (cutoff: float) : Tensor =
    use rt = rows.t ()
    let struct (q, t) = torch.linalg.qr rt
    use q = q
    use t = t
    use ttt = t.mm (t.t ())
    let values, vectors = eighKept ttt cutoff
    use values = values
    use vectors = vectors
    use scale = values.rsqrt ()
    use scaled = vectors * scale.unsqueeze 0L
    use qt = q.t ()
    scaled.t().mm qt

/// A PSD matrix S2 given either as itself or as its rows R (S2 = RᵀR), for the randomised factor.
type PsdOperator =
    /// S2 = RᵀR from the rows R (n×D): a product with S2 costs two n·D·k products.
    | Rows of rows: Tensor
    /// S2 itself (D×D): a product costs D²·k.
    | Matrix of matrix: Tensor
    member o.Size = match o with Rows r -> r.shape[1] | Matrix s -> s.shape[0]
    /// The largest rank S2 can have: min(n, D) from the rows, D for the matrix.
    member o.MaxRank = match o with Rows r -> min r.shape[0] r.shape[1] | Matrix s -> s.shape[0]
    member o.Dtype = match o with Rows r -> r.dtype | Matrix s -> s.dtype
    member o.Device = match o with Rows r -> r.device | Matrix s -> s.device

/// S2·X.
let private operatorTimes (o: PsdOperator) (x: Tensor) : Tensor =
    match o with
    | Rows r -> (use rx = r.mm x in use rt = r.t () in rt.mm rx)
    | Matrix s -> s.mm x

/// What QᵀS2Q is formed from, one block of Q at a time (R·Q_i from the rows, S2·Q_i from the matrix).
let private operatorImage (o: PsdOperator) (q: Tensor) : Tensor =
    match o with
    | Rows r -> r.mm q
    | Matrix s -> s.mm q

/// QᵀS2Q from the images of all of Q's blocks: BᵀB with B = RQ, or Qᵀ(S2Q) made symmetric.
let private operatorGram (o: PsdOperator) (q: Tensor) (image: Tensor) : Tensor =
    match o with
    | Rows _ -> (use bt = image.t () in bt.mm image)
    | Matrix _ -> (use qt = q.t () in use g = qt.mm image in use gt = g.t () in (g + gt) / 2.0)

/// The randomised factor's sketch sizes: the first sketch has `randomizedColumns` columns; a sketch of
/// k columns is accepted when at most k − max(16, k/4) of its eigenvalues clear the cutoff (the
/// oversampling: the smallest kept directions are then resolved by the columns past them), otherwise
/// k doubles. Each new block of columns gets `randomizedPowerIterations` extra products with S2.
/// Measured on the CIFAR-10-shaped inputs (D2 = 3,073, 2,048 samples, a slowly decaying spectrum at
/// the cutoff; docs/notebook/2026-12-06-randomized-input-factor.md): one iteration and k/8 kept 214
/// directions where the cutoff keeps 241; one and k/4, 237; two and k/4, 240 (298 of 300 on the
/// strong-signal files) for 0.7 s against the exact factor's 1.5 s.
let randomizedColumns = 64L
let randomizedPowerIterations = 2
let randomizedOversampling (k: int64) = max 16L (k / 4L)

/// A randomised low-rank factor (see randomizedFactor): W (r×D) with WᵀW ≈ S2⁺ on the kept subspace.
type RandomizedFactor =
    { W: Tensor
      /// Columns of the accepted sketch.
      Columns: int64
      /// Sketches tried (1 + the doublings of k).
      Sketches: int
      /// The sketch reached S2's largest possible rank, so it spans S2's whole range: the factor is the exact one.
      Spanned: bool }
    interface System.IDisposable with
        member f.Dispose () = f.W.Dispose ()

/// X − Q(QᵀX), twice (once is not enough when X lies mostly in Q's span).
let private projectOut (q: Tensor) (x: Tensor) : Tensor =
    if q.shape[1] = 0L then x.clone ()
    else
        let once (y: Tensor) = (use qt = q.t () in use c = qt.mm y in use qc = q.mm c in y - qc)
        use first = once x
        once first

/// An orthonormal basis of X's columns (thin QR).
let private orthonormal (x: Tensor) : Tensor =
    let struct (q, r) = torch.linalg.qr x
    r.Dispose ()
    q

/// W with WᵀW ≈ S2⁺ over S2's eigenvalues above cutoff·λmax, from a randomised range finder
/// (Halko, Martinsson & Tropp 2011, §4.4 and §5.5; blocked as in Martinsson & Voronin 2016): an
/// orthonormal Q (D×k) spans S2·Ω, Ω Gaussian, after `randomizedPowerIterations` more products with
/// S2; the eigenpairs (θ, v) of the k×k QᵀS2Q give S2's top eigenpairs as (θ, Qv), and
/// W = Θ^{-1/2}(QV)ᵀ over the θ above cutoff·θmax. k starts at `randomizedColumns` and doubles
/// (the new columns drawn, iterated and made orthogonal to the old ones, the old kept) until the
/// sketch has the oversampling's columns past the last kept θ, so the rank kept is the one the cutoff
/// finds, found adaptively; or until k reaches S2's largest possible rank, where Q spans S2's range
/// and the factor is exact. θ are Rayleigh–Ritz values, never above S2's eigenvalues; directions well
/// above the cutoff are resolved to rounding, those near it up to (λ_{k+1}/λ_i)^{2q+2}. Each product
/// costs n·D·k from the rows (2 per S2 product) or D²·k from the matrix, instead of the exact path's
/// QR of the rows and n×n eigh (n²·D and n³). Deterministic for a given `seed`. In the operator's dtype.
let randomizedFactor (s2: PsdOperator) (cutoff: float) (seed: uint64) : RandomizedFactor =
    let d = s2.Size
    let full = s2.MaxRank
    match s2 with
    | Rows r when r.shape[0] = 0L -> invalidArg "s2" "the randomised factor needs rows: S2 = RᵀR was given with no rows (n = 0)"
    | _ when d = 0L -> invalidArg "s2" "the randomised factor needs a matrix of size at least 1: S2 is 0×0"
    | _ -> ()
    use generator = new torch.Generator (seed)
    let mutable basis = torch.zeros ([| d; 0L |], dtype = s2.Dtype, device = s2.Device)
    let mutable image : Tensor | null = null
    let mutable k = min randomizedColumns full
    let mutable sketches = 0
    let mutable result = None
    try
        while result.IsNone do
            sketches <- sketches + 1
            let block = k - basis.shape[1]
            // The new block: S2^(1+q)·Ω, orthogonal to the columns kept, orthonormal.
            let mutable y =
                use omega = (use o = torch.randn ([| d; block |], dtype = s2.Dtype, generator = generator) in o.``to`` s2.Device)
                use so = operatorTimes s2 omega
                use p = projectOut basis so
                orthonormal p
            for _ in 1 .. randomizedPowerIterations do
                use sy = operatorTimes s2 y
                use p = projectOut basis sy
                y.Dispose ()
                y <- orthonormal p
            // Once more against the kept columns: rounding left in the iteration's last product.
            use again = projectOut basis y
            y.Dispose ()
            use yq = orthonormal again
            use newImage = operatorImage s2 yq
            let grown = torch.cat ([| basis; yq |], 1L)
            basis.Dispose ()
            basis <- grown
            let grownImage = match image with null -> newImage.clone () | i -> torch.cat ([| i; newImage |], 1L)
            match image with null -> () | i -> i.Dispose ()
            image <- grownImage
            use gram = operatorGram s2 basis grownImage
            let values, vectors = eighKept gram cutoff
            use values = values
            use vectors = vectors
            let kept = values.shape[0]
            let spanned = k >= full
            if spanned || kept <= k - randomizedOversampling k then
                use scale = values.rsqrt ()
                use directions = basis.mm vectors
                use scaled = directions * scale.unsqueeze 0L
                result <- Some { W = scaled.t().contiguous (); Columns = k; Sketches = sketches; Spanned = spanned }
            else
                k <- min (2L * k) full
        result.Value
    finally
        basis.Dispose ()
        match image with null -> () | i -> i.Dispose ()

/// A⁺X = Wᵀ(W X) without forming A⁺ (a Cholesky solve, or V Λ⁻¹ Vᵀ X on the kept eigenpairs).
let solvePsd (f: PsdFactor) (x: Tensor) : Tensor =
    match f with
    | Cholesky l -> x.cholesky_solve (l, upper = false)
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
