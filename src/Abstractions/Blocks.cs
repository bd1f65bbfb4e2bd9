using TorchSharp;
using static TorchSharp.torch;

namespace TinyGrow.Abstractions;

// A model is a sequence of blocks (DESIGN §3.1). A block owns its layers and its junctions
// A → (normalisation, activation, average pooling) → B; the engine grows junctions through
// IJunction and never looks inside a block.

/// <summary>How a forward pass runs. <see cref="Training"/>: normalisation uses batch statistics
/// (else its running statistics); <see cref="UpdateRunningStatistics"/>: a training step (a
/// statistics pass or a γ search must not move them); <see cref="Records"/>: when set, every block
/// records each of its junctions' tensors there (statistics pass).</summary>
public sealed class ForwardPass
{
    /// <summary>Normalisation from the batch's statistics (train mode).</summary>
    public bool Training { get; init; }
    /// <summary>Whether normalisation layers update their running statistics.</summary>
    public bool UpdateRunningStatistics { get; init; }
    /// <summary>Where junction tensors are recorded; null: no recording.</summary>
    public Dictionary<IJunction, JunctionRecord>? Records { get; init; }

    /// <summary>A training step: batch statistics, running statistics updated.</summary>
    public static ForwardPass TrainStep => new() { Training = true, UpdateRunningStatistics = true };
    /// <summary>Evaluation: running statistics.</summary>
    public static ForwardPass Evaluation => new() { Training = false };
    /// <summary>Batch statistics without moving the running ones: what the next training steps see
    /// (statistics pass, γ search).</summary>
    public static ForwardPass Probe => new() { Training = true, UpdateRunningStatistics = false };
    /// <summary>A probe that records junction tensors.</summary>
    public static ForwardPass Recording() => new() { Training = true, UpdateRunningStatistics = false, Records = new() };
}

/// <summary>What a block records of a junction in a statistics pass: A's input, B's input and B's
/// output before B's own normalisation (the gradient is taken with respect to it; it must be in the
/// autograd graph). <see cref="AOutput"/>, optional: A's pre-activation output, which the γ search
/// keeps (when null it computes it from <see cref="AInput"/>).</summary>
public sealed record JunctionRecord(Tensor AInput, Tensor BInput, Tensor BOutput)
{
    /// <summary>A's pre-activation output (before its normalisation), when the block records it.</summary>
    public Tensor? AOutput { get; init; }
}

/// <summary>A candidate applied to a junction: undo it, or commit it (releases the old tensors).</summary>
public interface IAppliedGrowth
{
    /// <summary>Restores the junction's layers (and normalisation) as they were.</summary>
    void Undo();
    /// <summary>Keeps the candidate; the previous tensors are disposed.</summary>
    void Commit();
}

/// <summary>Two growable layers A → (per-channel, per-position operations) → B, owned by a block.
/// Growing adds outputs to A (and its normalisation) and inputs to B.</summary>
public interface IJunction
{
    /// <summary>A readable name, unique in the model, e.g. "cnn.conv1→conv2".</summary>
    string Name { get; }
    /// <summary>The layer that gains outputs.</summary>
    IGrowableLayer A { get; }
    /// <summary>The layer that gains inputs.</summary>
    IGrowableLayer B { get; }
    /// <summary>Largest width A may reach.</summary>
    int MaxWidth { get; }
    /// <summary>σ′(0⁺) of the activation between A and B.</summary>
    double ActivationSlopeAtZero { get; }
    /// <summary>Parameters one new neuron adds (A's row, normalisation, B's columns).</summary>
    long ParametersPerNeuron { get; }
    /// <summary>The larger of D1 (a row of b) and D2 (a row of b̃): rows are drawn in proportion to it.</summary>
    long RowSize { get; }
    /// <summary>Statistics rows of a recorded batch. <paramref name="gradB"/> is ∂(sum loss)/∂BOutput.
    /// <paramref name="maxRows"/> caps the rows kept from this batch (drawn at random with
    /// <paramref name="generator"/>, the same rows for every statistic); 0: keep all.</summary>
    JunctionRows Rows(JunctionRecord record, Tensor gradB, long maxRows, Generator? generator);
    /// <summary>Applies a proposal at amplitude γ: A gains rows γ·α (its normalisation grows so that
    /// the new channel passes γ·αᵀb̃ through, in train and eval mode, using
    /// <paramref name="statistics"/>' A moments), B gains columns γ·ω, and W_B ← W_B − γ²δ when δ is set.</summary>
    IAppliedGrowth Apply(NeuronProposal proposal, double gamma, JunctionStatistics statistics);
}

/// <summary>A part of a model: a chain of dense layers, a CNN, a ResNet block, a stem, a head.</summary>
public interface IModelBlock : IDisposable
{
    /// <summary>The block kind's name.</summary>
    string Kind { get; }
    /// <summary>The junctions it owns (may be none: a fixed stem or head).</summary>
    IReadOnlyList<IJunction> Junctions { get; }
    /// <summary>Trainable parameters in a stable order and count (tensors change on growth; growth
    /// only appends rows/columns, so optimizer state is carried by its leading block).</summary>
    IReadOnlyList<TorchSharp.Modules.Parameter> Parameters { get; }
    /// <summary>Non-trained state saved with the model (BatchNorm running statistics), stable order.</summary>
    IReadOnlyList<Tensor> Buffers { get; }
    /// <summary>The spec that rebuilds this block at its current widths (for saving and loading).</summary>
    BlockSpec CurrentSpec { get; }
    /// <summary>Output shape per sample.</summary>
    long[] OutputShape { get; }
    /// <summary>The block's function.</summary>
    Tensor Forward(Tensor input, ForwardPass pass);
}

/// <summary>Optional for a block: its output when one of its junctions' A receives a given
/// input, the layers before A skipped. The γ search evaluates many candidates at one junction;
/// nothing before A depends on them, and a candidate only appends A's outputs, so the network keeps
/// A's input and A's existing pre-activation outputs from the first evaluation and resumes here.
/// Must equal <see cref="IModelBlock.Forward"/> to rounding on the input that produced that A input.
/// A block without it is run from its own input (right when every junction's A reads the block's
/// input, as in a ResNet block).</summary>
public interface IResumableBlock
{
    /// <summary>The block's output with <paramref name="aInput"/> entering <paramref name="junction"/>'s
    /// A. <paramref name="aOutput"/>, when set, is A's pre-activation output for its first
    /// <c>aOutput.shape[1]</c> channels on that input (computed before a candidate appended the
    /// others): only the rest need computing (<see cref="IGrowableLayer.ForwardOutputs"/>).</summary>
    Tensor ForwardFrom(IJunction junction, Tensor aInput, Tensor? aOutput, ForwardPass pass);
}

/// <summary>Optional for a block: where the γ search of a unit proposal resumes. A unit proposal
/// (<see cref="NeuronProposal.FanOutAmplitude"/>) changes nothing in its block but B's pre-activation
/// output, and that linearly in γ: Z(γ) = Z(0) + γ·ΔZ. The search keeps Z(0) (the record's
/// <see cref="JunctionRecord.BOutput"/>), computes ΔZ once with <see cref="BOutputFrom"/>, and evaluates
/// every γ from B's output on, without A and B. Both must equal <see cref="IModelBlock.Forward"/> to
/// rounding on the samples that produced their inputs.</summary>
public interface IResumableAfterB
{
    /// <summary>B's pre-activation output (what the record's BOutput holds) with <paramref name="aInput"/>
    /// entering <paramref name="junction"/>'s A; <paramref name="aOutput"/> as in
    /// <see cref="IResumableBlock.ForwardFrom"/> (null: A computes every channel).</summary>
    Tensor BOutputFrom(IJunction junction, Tensor blockInput, Tensor aInput, Tensor? aOutput, ForwardPass pass);
    /// <summary>The block's output when <paramref name="junction"/>'s B has produced the pre-activation
    /// output <paramref name="bOutput"/> on the samples whose block input is <paramref name="blockInput"/>
    /// (a residual block's shortcut reads it).</summary>
    Tensor ForwardAfterB(IJunction junction, Tensor blockInput, Tensor bOutput, ForwardPass pass);
}

/// <summary>What a block is built from. Presets and the Model:Layers list form are expanded into these.</summary>
public sealed class BlockSpec
{
    /// <summary>Block kind name ("mlp", "cnn", "resnet-stem", "resnet-basic", "resnet-head").</summary>
    public string Kind { get; set; } = "mlp";
    /// <summary>Layers of a chain block (mlp, cnn), in order.</summary>
    public List<LayerSpec> Layers { get; set; } = new();
    /// <summary>Output channels of a fixed layer (stem, residual stream).</summary>
    public int Channels { get; set; }
    /// <summary>Inner (growing) width of a ResNet block.</summary>
    public int Width { get; set; } = 1;
    /// <summary>Largest inner width.</summary>
    public int MaxWidth { get; set; } = 1;
    /// <summary>Stride of a ResNet block's first conv.</summary>
    public int Stride { get; set; } = 1;
    /// <summary>How a CNN's feature maps enter its dense layers: "gap" (global average pool) or "flatten".</summary>
    public string Head { get; set; } = "gap";
    /// <summary>How a new channel's fan-out enters a conv B (DESIGN §4.3): "restricted" (the kernel's
    /// centre tap; S2 exact) or "full" (every tap; S2 summed over taps, an approximation).</summary>
    public string ConvFanOut { get; set; } = "restricted";
    /// <summary>Whether the block ends the model: its last layer gets one output per class.</summary>
    public bool IsOutput { get; set; }
    /// <summary>Bias of the output layer.</summary>
    public bool OutputBias { get; set; } = true;
}

/// <summary>What a block is built in: its input shape, the class count, the layer kinds, where.</summary>
public sealed record BlockContext(
    long[] InputShape,
    int Classes,
    IReadOnlyDictionary<string, ILayerKind> LayerKinds,
    Device Device,
    ScalarType DType,
    Generator? Generator,
    string Name);

/// <summary>A kind of block, served by a plugin and named by <see cref="BlockSpec.Kind"/>.</summary>
public interface IBlockKind
{
    /// <summary>Name used in <see cref="BlockSpec.Kind"/>.</summary>
    string Name { get; }
    /// <summary>Problems with the spec for this input shape (a kernel larger than its map, pooling to
    /// nothing, a width above its maximum), each naming the key (relative to <paramref name="key"/>)
    /// and the fix; empty when the block can be built. Checked before anything is written.</summary>
    IReadOnlyList<string> Validate(BlockSpec spec, long[] inputShape, string key);
    /// <summary>The output shape per sample for this input shape (valid specs only).</summary>
    long[] OutputShape(BlockSpec spec, long[] inputShape, int classes);
    /// <summary>Builds the block.</summary>
    IModelBlock Create(BlockSpec spec, BlockContext context);
}
