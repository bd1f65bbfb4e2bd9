module TinyGrow.Tests.TestUtil

open TorchSharp

let f64 = torch.ScalarType.Float64

/// Largest absolute entry of a − b.
let maxAbsDiff (a: torch.Tensor) (b: torch.Tensor) =
    use d = (a - b).abs ()
    if d.numel () = 0L then 0.0 else d.max().item<float> ()

/// Deterministic float64 normal matrix.
let randn (seed: int64) (rows: int64) (cols: int64) =
    use g = new torch.Generator (uint64 seed)
    torch.randn ([| rows; cols |], dtype = f64, generator = g)

/// Float64 matrix from row-major values.
let mat (rows: int64) (cols: int64) (values: float[]) =
    use t = torch.tensor (values, dtype = f64)
    t.reshape (rows, cols)
