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

/// Thin SVD, singular values descending: U (m×r), s (r), V (n×r).
let thinSvd (a: Tensor) : Tensor * Tensor * Tensor =
    let struct (u, s, vh) = torch.linalg.svd (a, fullMatrices = false)
    use vh = vh
    u, s, vh.t().contiguous ()

/// Nullable tensors for C# contracts (`Tensor?`) under F# nullness checking.
module Null =
    let from (t: Tensor) : Tensor | null = t
    let none : Tensor | null = null
