using System.ComponentModel.DataAnnotations;
using TorchSharp;
using static TorchSharp.torch;

namespace TinyGrow.Abstractions;

/// <summary>
/// A layer whose width can grow. Its parameters live in replaceable cells: growing computes new
/// tensors (<see cref="GrowOutputs"/>, <see cref="GrowInputs"/>, <see cref="UpdateExisting"/>) and
/// <see cref="Load"/> swaps them in, so a candidate can be tried and undone by loading the old ones.
/// New rows and columns are always appended, so an existing weight keeps its index (the optimizer
/// state of existing weights is carried over by copying the leading block).
/// </summary>
public interface IGrowableLayer : IDisposable
{
    /// <summary>The layer kind's name, e.g. "dense".</summary>
    string Kind { get; }
    /// <summary>Input features (channels).</summary>
    int InputWidth { get; }
    /// <summary>Output neurons (channels): the width that grows.</summary>
    int OutputWidth { get; }
    /// <summary>Whether the layer has a bias (then statistics carry a trailing 1).</summary>
    bool HasBias { get; }
    /// <summary>The activation applied to this layer's output ("relu", "tanh", "selu", "gelu", "identity").</summary>
    string Activation { get; }
    /// <summary>Parameters in a stable order and count (e.g. weight, bias); the tensors change on growth.</summary>
    IReadOnlyList<TorchSharp.Modules.Parameter> Parameters { get; }

    /// <summary>Pre-activation output.</summary>
    Tensor Forward(Tensor input);
    /// <summary>The pre-activation outputs from <paramref name="first"/> on only (channels on
    /// dimension 1): the γ search computes a candidate's new outputs this way and keeps the existing
    /// ones from before it was applied. Equals those channels of <see cref="Forward"/> to rounding;
    /// the default computes them all and keeps the last ones (right, not faster).</summary>
    Tensor ForwardOutputs(Tensor input, int first) => Forward(input).narrow(1, first, OutputWidth - first);
    /// <summary>Activation applied to a pre-activation.</summary>
    Tensor Activate(Tensor preActivation);
    /// <summary>σ′(0⁺) of the activation (ReLU 1, tanh 1, SELU 1.0507, GELU 0.5, identity 1).</summary>
    double ActivationSlopeAtZero { get; }

    /// <summary>Parameter values with K new output neurons: <paramref name="fanIn"/> is K×D2 (bias last when <see cref="HasBias"/>).</summary>
    /// <remarks>The tensors passed to <see cref="GrowOutputs"/>, <see cref="GrowInputs"/> and <see cref="UpdateExisting"/> may
    /// describe the layer as it was when the statistics were taken: inputs (outputs) added since then get zero weight.
    /// They may be float64; the layer converts them to its own dtype and device.</remarks>
    Tensor[] GrowOutputs(Tensor fanIn);
    /// <summary>Parameter values with K new inputs: <paramref name="fanOut"/> is OutputWidth×K.</summary>
    Tensor[] GrowInputs(Tensor fanOut);
    /// <summary>Parameter values W ← W − scale·δ for the existing weights; δ is OutputWidth×D1 (bias last).</summary>
    Tensor[] UpdateExisting(Tensor delta, double scale);
    /// <summary>Replaces the parameter tensors (same order and count as <see cref="Parameters"/>), taking ownership of
    /// <paramref name="values"/>. The previous parameters are not disposed: the caller keeps them to undo a
    /// candidate (by loading them back) or disposes them. Callers may have a dispose scope open (a candidate
    /// is tried inside one): the layer must detach the parameters it keeps from it
    /// (<c>DetachFromDisposeScope</c>), or the network's weights would be freed with the candidate.</summary>
    void Load(IReadOnlyList<Tensor> values);
}

/// <summary>What a layer is built from (bound from the Model:Layers configuration).</summary>
public sealed class LayerSpec
{
    /// <summary>Layer kind name, e.g. "dense".</summary>
    public string Kind { get; set; } = "dense";
    /// <summary>Widest layer allowed: 16,384 neurons (channels) keeps one dense layer between two
    /// such layers at 1 GiB of float32 weights; a width of 10⁷ would ask libtorch for tens of GB
    /// and crash the process instead of failing with a message.</summary>
    public const int WidthLimit = 16_384;
    /// <summary>Starting width (neurons / channels).</summary>
    [Range(1, WidthLimit)] public int Width { get; set; } = 1;
    /// <summary>Largest width growth may reach.</summary>
    [Range(1, WidthLimit)] public int MaxWidth { get; set; } = 256;
    /// <summary>Activation after this layer.</summary>
    public string Activation { get; set; } = "tanh";
    /// <summary>Whether the layer has a bias (a conv followed by BatchNorm needs none: BN's shift is one).</summary>
    public bool Bias { get; set; } = true;

    // Convolutional layers only ("conv" kind); dense layers ignore them.
    /// <summary>Kernel size (square, odd: a new channel's fan-out sits at the centre tap).</summary>
    [Range(1, 31)] public int Kernel { get; set; } = 3;
    /// <summary>Stride.</summary>
    [Range(1, 32)] public int Stride { get; set; } = 1;
    /// <summary>Zero padding on each side; -1 means "same" for stride 1: Dilation·(Kernel−1)/2.</summary>
    [Range(-1, 256)] public int Padding { get; set; } = -1;
    /// <summary>Dilation.</summary>
    [Range(1, 32)] public int Dilation { get; set; } = 1;
    /// <summary>BatchNorm between the conv and its activation (it grows with the conv).</summary>
    public bool BatchNorm { get; set; } = true;
    /// <summary>Pooling after the activation: "none", "max2" (a boundary: no junction across it) or
    /// "avg2" (linear, so a junction may span it).</summary>
    public string Pool { get; set; } = "none";

    /// <summary>The padding in pixels (resolving -1).</summary>
    public int ResolvedPadding => Padding >= 0 ? Padding : Dilation * (Kernel - 1) / 2;
}

/// <summary>
/// Per-position rows of one batch for a junction A → σ → B (DESIGN §4): <c>B</c> holds b (B's input,
/// trailing 1 if B has a bias), <c>ATilde</c> holds b̃ (A's input aligned to the same position of B,
/// trailing 1 if A has a bias), <c>G</c> holds g = ∂(sum loss)/∂(B's pre-activation). One row per
/// (sample, position) kept; <c>Samples</c> is the number of samples the rows came from.
/// <c>RowWeight</c> is the number of (sample, position) rows each kept row stands for (1 when every
/// row is kept; L·n/r when r of the n·L rows were drawn at random), so sums stay unbiased.
/// <c>APatches</c> (optional) holds A's input patches at A's own output positions (same subsampling
/// weight), for junctions whose A is followed by a normalisation that must grow with it.
/// </summary>
public sealed record JunctionRows(Tensor B, Tensor ATilde, Tensor G, long Samples, double RowWeight = 1.0, Tensor? APatches = null) : IDisposable
{
    /// <summary>Optional, for a junction whose B reads A through a mean over A's output positions (a global
    /// average pool): A's input patches at every one of those positions for each row's sample,
    /// [rows, positions, D2] (trailing 1 if A has a bias), so that a new unit's feature, the mean over positions
    /// of σ of its normalised pre-activation, can be computed exactly (<c>ATilde</c> holds their mean, which
    /// gives σ of the mean instead).</summary>
    public Tensor? PositionPatches { get; init; }

    /// <inheritdoc />
    public void Dispose() { B.Dispose(); ATilde.Dispose(); G.Dispose(); APatches?.Dispose(); PositionPatches?.Dispose(); }
}

/// <summary>A kind of growable layer: builds layers from a spec (blocks combine them into junctions).</summary>
public interface ILayerKind
{
    /// <summary>Name used in Model:Layers:N:Kind.</summary>
    string Name { get; }
    /// <summary>Problems with <paramref name="spec"/> for this kind (e.g. an unknown activation), each a
    /// sentence naming the field and the fix; empty when the spec is usable. Checked before a run
    /// writes anything.</summary>
    IReadOnlyList<string> Validate(LayerSpec spec);
    /// <summary>Builds a layer for inputs of <paramref name="inputWidth"/> features (channels for a conv).</summary>
    IGrowableLayer Create(LayerSpec spec, int inputWidth, Device device, ScalarType dtype, Generator? generator);
}
