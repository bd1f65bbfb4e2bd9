/// Accumulation of a junction's statistics (DESIGN §4) over batches. Per-batch products are GEMMs
/// in the rows' dtype, summed into float64; dividing by the number of samples at the end makes
/// the result independent of how the data was split into batches.
module TinyGrow.Core.Statistics

open TorchSharp
open TinyGrow.Abstractions

type private Sums =
    { S: torch.Tensor; M: torch.Tensor; S2: torch.Tensor; M2: torch.Tensor; P: torch.Tensor
      mutable TraceE: float; mutable Samples: int64; mutable UnitRoundoff: float; mutable RowsPerProduct: int64 }

/// Unit roundoff of a floating dtype (products formed per batch in float32 carry its rounding into
/// the float64 sums).
let unitRoundoff (dtype: torch.ScalarType) =
    match dtype with
    | torch.ScalarType.Float64 -> 1.1102230246251565e-16
    | torch.ScalarType.Float32 -> 5.960464477539063e-08
    | torch.ScalarType.Float16 -> 4.8828125e-4
    | _ -> 3.90625e-3 // bfloat16, and anything coarser we do not expect

/// Sums of b bᵀ, b gᵀ, b̃ b̃ᵀ, b̃ gᵀ, b̃ bᵀ and |g|² over every row added.
type JunctionAccumulator() =
    let mutable sums: Sums option = None

    member _.Add(rows: JunctionRows) =
        let b, bt, g = rows.B, rows.ATilde, rows.G
        if b.shape[0] <> bt.shape[0] || b.shape[0] <> g.shape[0] then
            invalidArg "rows" $"Junction rows disagree on the number of positions: b {b.shape[0]}, b̃ {bt.shape[0]}, g {g.shape[0]}."
        let f64 (t: torch.Tensor) = t.to_type torch.ScalarType.Float64
        let s =
            match sums with
            | Some s -> s
            | None ->
                // Created outside any caller's per-batch dispose scope's reach: they outlive the batch.
                let z (r: int64) (c: int64) =
                    let t = torch.zeros ([| r; c |], dtype = torch.ScalarType.Float64, device = b.device)
                    t.DetachFromDisposeScope ()
                let d1, d2, out = b.shape[1], bt.shape[1], g.shape[1]
                let s = { S = z d1 d1; M = z d1 out; S2 = z d2 d2; M2 = z d2 out; P = z d2 d1; TraceE = 0.0; Samples = 0L; UnitRoundoff = 0.0; RowsPerProduct = 0L }
                sums <- Some s
                s
        use scope = torch.NewDisposeScope ()
        s.S.add_ (f64 (b.t().mm b)) |> ignore
        s.M.add_ (f64 (b.t().mm g)) |> ignore
        s.S2.add_ (f64 (bt.t().mm bt)) |> ignore
        s.M2.add_ (f64 (bt.t().mm g)) |> ignore
        s.P.add_ (f64 (bt.t().mm b)) |> ignore
        s.TraceE <- s.TraceE + (f64 g).square().sum().item<float> ()
        s.Samples <- s.Samples + rows.Samples
        s.UnitRoundoff <- max s.UnitRoundoff (unitRoundoff b.dtype)
        s.RowsPerProduct <- max s.RowsPerProduct b.shape[0]

    /// Statistics divided by the number of samples; the accumulator's tensors are handed over.
    member _.Finish() : JunctionStatistics =
        match sums with
        | None -> invalidOp "No rows were added to the junction accumulator."
        | Some s ->
            let n = float s.Samples
            sums <- None
            let div (t: torch.Tensor) = t.div_ (n.ToScalar ())
            new JunctionStatistics(div s.S, div s.M, div s.S2, div s.M2, div s.P, s.TraceE / n, s.Samples, s.UnitRoundoff, s.RowsPerProduct)
