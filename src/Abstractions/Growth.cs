using static TorchSharp.torch;

namespace TinyGrow.Abstractions;

/// <summary>
/// Second-order statistics of a junction, divided by the number of samples n (DESIGN §4), float64:
/// S = Σbbᵀ/n (D1×D1), M = Σbgᵀ/n (D1×out), S2 = Σb̃b̃ᵀ/n (D2×D2), M2 = Σb̃gᵀ/n (D2×out),
/// P = Σb̃bᵀ/n (D2×D1), TraceE = Σ|g|²/n. <c>UnitRoundoff</c> is that of the dtype in which the per-batch
/// products were formed (2⁻²⁴ for float32 rows, 2⁻⁵³ for float64) and <c>RowsPerProduct</c> the most
/// rows one such product summed: eigen-directions of S or S2 below ~(D + √rows)·UnitRoundoff·λmax are
/// rounding, whatever the configured cutoff.
/// </summary>
/// <c>AMean</c> and <c>ASecondMoment</c> (optional) are the mean and second moment of A's input
/// patches over (sample, A output position) rows, for a normalisation that grows with A.
/// <c>GroupM2</c>, <c>GroupP</c> and <c>GroupFractions</c> (optional, for a significance test, DESIGN §4.1):
/// the rows split into G disjoint groups (whole batches in a pass, every batch split by sample in a window), GroupM2[g] = Σ_{rows of g} b̃gᵀ/n (G×D2×out),
/// GroupP[g] = Σ_{rows of g} b̃bᵀ/n (G×D2×D1), GroupS2[g] = Σ_{rows of g} b̃b̃ᵀ/n (G×D2×D2), so that they
/// sum to M2, P and S2; GroupFractions[g] is the share of the samples in group g. The per-group S2 comes
/// in one of two forms: <c>GroupRows</c> while the rows are few (at most G·D2/2 of them in all), per group
/// the rows R_g (R_g×D2, each row scaled by √(weight/n)) with GroupS2[g] = R_gᵀR_g, which is never formed:
/// the significance test only needs GroupS2[g]·Θ = R_gᵀ(R_gΘ), and forming G matrices of D2² costs a
/// junction reading a 785-pixel input more than the rest of its statistics together; else <c>GroupS2</c>.
public sealed record JunctionStatistics(Tensor S, Tensor M, Tensor S2, Tensor M2, Tensor P, double TraceE, long Samples,
                                        double UnitRoundoff, long RowsPerProduct,
                                        Tensor? AMean = null, Tensor? ASecondMoment = null,
                                        Tensor? GroupM2 = null, Tensor? GroupP = null, double[]? GroupFractions = null,
                                        Tensor? GroupS2 = null, Tensor[]? GroupRows = null) : IDisposable
{
    /// <summary>A sample of the rows the sums were formed from (b, b̃, g; at most a few thousand), kept when
    /// new units are fitted on their actual features (GrowthOptions.NewUnits = "unit"): σ(BN(αᵀb̃)) is not
    /// a function of the second moments. Its <c>Samples</c> is n and its <c>RowWeight</c> the rows each
    /// kept row stands for, so that Σ_rows RowWeight·x/Samples estimates the per-sample sums. Null: none
    /// kept (or the rows are not one per position of B's input, e.g. through a global average pool).</summary>
    public JunctionRows? RowSample { get; init; }
    /// <summary>For each row of <see cref="RowSample"/>, the index of the batch (or batch part) it came from
    /// (int64): rows of one sample share it, so that folds of whole batches are independent.</summary>
    public Tensor? RowSampleBatches { get; init; }

    /// <inheritdoc />
    public void Dispose()
    {
        S.Dispose(); M.Dispose(); S2.Dispose(); M2.Dispose(); P.Dispose(); AMean?.Dispose(); ASecondMoment?.Dispose();
        GroupM2?.Dispose(); GroupP?.Dispose(); GroupS2?.Dispose(); RowSample?.Dispose(); RowSampleBatches?.Dispose();
        if (GroupRows is not null) foreach (var rows in GroupRows) rows.Dispose();
    }
}

/// <summary>What a strategy is asked: propose at most <see cref="MaxNeurons"/> neurons for a junction
/// (its layers are <c>Junction.A</c> and <c>Junction.B</c>; σ′(0) is <c>Junction.ActivationSlopeAtZero</c>).</summary>
public sealed record GrowthRequest(
    JunctionStatistics Statistics,
    IJunction Junction,
    int MaxNeurons,
    GrowthOptions Options,
    Generator? Generator)
{
    /// <summary>A whitening W (r×D2, float64, WᵀW = S2⁺) computed once per run, on more samples, for a
    /// junction whose A reads the network's input (its S2 depends only on the data); null: none. A
    /// strategy that whitens may use it instead of factoring <c>Statistics.S2</c> again.</summary>
    public Tensor? Whitening { get; init; }
}

/// <summary>
/// A proposal for a junction (all tensors float64). Applying it with amplitude γ adds rows γ·FanIn to A,
/// columns γ·FanOut to B, and (when <see cref="Delta"/> is set) W_B ← W_B − γ²·δ.
/// Predicted first-order decrease of the mean loss: γ²(DeltaDecrease + σ′(0)·Σ NeuronScores).
/// With <see cref="FanOutAmplitude"/> the amplitude is on B only (A's new rows are FanIn as given) and
/// everything is linear in γ: γ(DeltaDecrease + σ′(0)·Σ NeuronScores).
/// </summary>
public sealed record NeuronProposal(
    Tensor FanIn,
    Tensor FanOut,
    Tensor? Delta,
    double DeltaDecrease,
    double[] NeuronScores,
    double ActivationSlope,
    double Bottleneck) : IDisposable
{
    /// <summary>When set, the engine applies the proposal at this amplitude γ without a line search and
    /// without the acceptance margin. For proposals that carry their own scale and do not change the loss
    /// at first (GradMax: a zero fan-in leaves the function unchanged at every γ, so a search could only
    /// reject it; the decrease appears once training moves the fan-in). Null (the default): γ is searched.
    /// <see cref="PredictedDecrease"/> then reads as the strategy documents it (for GradMax, the rate
    /// Σ‖∂L/∂α_k‖² at which training the new fan-ins starts to lower the loss).</summary>
    public double? Amplitude { get; init; }

    /// <summary>With a significance test (GrowthOptions.SignificanceTest), the level λ_k had to exceed to count:
    /// SignificanceFactor × the noise floor of N (+∞ when the noise could not be estimated). Null: no test.</summary>
    public double? NoiseFloor { get; init; }

    /// <summary>New units at full scale, the amplitude on the fan-out only (DESIGN §4.7): A gains rows FanIn
    /// unscaled, a normalisation after A gives each new channel unit scale (weight 1, bias 0, running
    /// statistics the channel's measured moments), B gains columns γ·FanOut and W_B ← W_B − γ·δ. The change is
    /// then linear in γ and so is <see cref="PredictedDecrease"/>. Set by the engine (NewUnits), not by strategies.</summary>
    public bool FanOutAmplitude { get; init; }
    /// <summary>The standard error of the estimate behind <see cref="PredictedDecrease"/> at γ = 1, when the
    /// prediction is an estimate from folds of the statistics (unit new units: the cross-validated slope's
    /// fold-to-fold standard error, sd/√folds). NaN (the default): no estimate of it. A prediction within a
    /// standard error or two of 0 cannot be told from sampling noise, and neither can its measured_over_predicted.</summary>
    public double DecreaseStandardError { get; init; } = double.NaN;

    /// <summary>The power p of γ in <see cref="PredictedDecrease"/>: 1 with <see cref="FanOutAmplitude"/>, else 2.</summary>
    public int AmplitudePower => FanOutAmplitude ? 1 : 2;
    /// <summary>Number of proposed neurons K.</summary>
    public int Count => NeuronScores.Length;

    /// <summary>First-order decrease of the mean loss at amplitude γ.</summary>
    public double PredictedDecrease(double gamma) =>
        (FanOutAmplitude ? gamma : gamma * gamma) * (DeltaDecrease + ActivationSlope * NeuronScores.Sum());

    /// <summary>The standard error of <see cref="PredictedDecrease"/> at amplitude γ: γ^p·<see cref="DecreaseStandardError"/>.</summary>
    public double PredictedDecreaseError(double gamma) => (FanOutAmplitude ? gamma : gamma * gamma) * DecreaseStandardError;

    /// <inheritdoc />
    public void Dispose() { FanIn.Dispose(); FanOut.Dispose(); Delta?.Dispose(); }
}

/// <summary>Proposes new neurons for a junction from its statistics only, so it works for every layer kind.</summary>
public interface IGrowthStrategy
{
    /// <summary>Name used in Growth:Strategy.</summary>
    string Name { get; }
    /// <summary>Proposes neurons; a proposal with zero neurons means "nothing worth adding". Runs on a worker
    /// thread, possibly while the engine reads the same network (the γ search's probe forward): treat the request,
    /// its statistics and the junction's layers as read-only (never <c>Apply</c>, <c>Load</c> or dispose them).</summary>
    NeuronProposal Propose(GrowthRequest request);
}
