using Microsoft.Extensions.DependencyInjection;
using TinyGrow.Abstractions;
using TinyGrow.Core;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace MyLayer;

/// <summary>The plugin's entry point: the host creates it and calls Register once.</summary>
public sealed class Plugin : IPluginModule
{
    // A constant, compiled in: the host refuses a plugin built for another contract by name.
    public int ContractVersion => Contract.Version;

    public void Register(IServiceCollection services) =>
        services.AddSingleton<ILayerKind, LayerKind>();
}

/// <summary>
/// The "my-dense" layer kind: y = xWᵀ + b, like the shipped "dense", but initialised for ReLU
/// networks (He et al. 2015: W ~ N(0, 2/in), b = 0) instead of PyTorch's U(−1/√in, 1/√in).
/// Usable wherever a dense layer is (Model:Layers:N:Kind in an MLP, or after the conv layers of a
/// CNN): those blocks compute the growth statistics from each layer's input as a dense layer's
/// (bias last), so a kind used there must keep y = xWᵀ + b with parameters [W, b].
/// </summary>
public sealed class LayerKind : ILayerKind
{
    public const string KindName = "my-dense";

    public string Name => KindName;

    // Checked before a run writes anything; each problem is a sentence naming the key and the fix.
    // The engine applies a junction's activation by name in places (new units), so a layer uses
    // the names TinyGrow.Core knows.
    public IReadOnlyList<string> Validate(LayerSpec spec) =>
        Activations.known.Contains(spec.Activation)
            ? []
            : [$"Activation '{spec.Activation}' is not known to the {KindName} kind: use one of {string.Join(", ", Activations.known)}."];

    public IGrowableLayer Create(LayerSpec spec, int inputWidth, Device device, ScalarType dtype, Generator? generator)
    {
        using var scope = NewDisposeScope();
        // Drawn on the CPU with the run's generator (a CPU generator, which CUDA sampling refuses),
        // then moved: the same seed gives the same network on every device.
        var weight = (randn([spec.Width, inputWidth], dtype: dtype, generator: generator) * Math.Sqrt(2.0 / inputWidth))
            .to(device).MoveToOuterDisposeScope();
        var bias = spec.Bias ? zeros([spec.Width], dtype: dtype, device: device).MoveToOuterDisposeScope() : null;
        return new Layer(weight, bias, spec.Activation);
    }
}

/// <summary>
/// y = xWᵀ + b with W (out×in) and b (out). Growing appends rows of W and b (new outputs) or columns
/// of W (new inputs), so an existing weight keeps its index; the statistics' layout is [W | b].
/// </summary>
public sealed class Layer : IGrowableLayer
{
    Parameter _weight;
    Parameter? _bias;

    public Layer(Tensor weight, Tensor? bias, string activation)
    {
        // Cells.parameter: a trainable parameter no dispose scope owns (the layer outlives the
        // scope it is built or grown in); the tensor given is disposed.
        _weight = Cells.parameter(weight);
        _bias = bias is null ? null : Cells.parameter(bias);
        Activation = activation;
    }

    public string Kind => LayerKind.KindName;
    public int InputWidth => (int)_weight.shape[1];
    public int OutputWidth => (int)_weight.shape[0];
    public bool HasBias => _bias is not null;
    public string Activation { get; }
    public double ActivationSlopeAtZero => Activations.slopeAtZero(Activation);
    public IReadOnlyList<Parameter> Parameters => _bias is null ? [_weight] : [_weight, _bias];

    public Tensor Forward(Tensor input) =>
        nn.functional.linear(input.dim() > 2 ? input.flatten(1) : input, _weight, _bias);

    public Tensor Activate(Tensor preActivation) => Activations.apply(Activation, preActivation);

    public Tensor[] GrowOutputs(Tensor fanIn)
    {
        using var _ = no_grad();
        var (rows, biasRows) = SplitBias(fanIn);                           // K×in, K
        var weight = cat([_weight, Fit(rows, rows.shape[0], InputWidth)], 0);
        return _bias is null ? [weight] : [weight, cat([_bias, biasRows!.to(_bias.dtype, _bias.device)], 0)];
    }

    public Tensor[] GrowInputs(Tensor fanOut)
    {
        using var _ = no_grad();
        var weight = cat([_weight, Fit(fanOut, OutputWidth, fanOut.shape[1])], 1);
        return _bias is null ? [weight] : [weight, _bias.clone()];
    }

    public Tensor[] UpdateExisting(Tensor delta, double scale)
    {
        using var _ = no_grad();
        var (dW, dB) = SplitBias(delta);
        var weight = _weight - Fit(dW, OutputWidth, InputWidth) * scale;
        if (_bias is null) return [weight];
        return [weight, dB is null ? _bias.clone() : _bias - Fit(dB.unsqueeze(1), OutputWidth, 1).flatten() * scale];
    }

    public void Load(IReadOnlyList<Tensor> values)
    {
        var expected = _bias is null ? 1 : 2;
        if (values.Count != expected)
            throw new ArgumentException($"A {LayerKind.KindName} layer has {expected} parameter tensors, got {values.Count}.", nameof(values));
        // The previous parameters are not disposed: the engine keeps them to undo a candidate.
        _weight = Cells.parameter(values[0]);
        if (_bias is not null) _bias = Cells.parameter(values[1]);
    }

    public void Dispose()
    {
        _weight.Dispose();
        _bias?.Dispose();
    }

    /// <summary>A rows×D tensor in [weights | bias] layout split into its weight columns and its bias column.</summary>
    (Tensor Weights, Tensor? Bias) SplitBias(Tensor t)
    {
        var d = t.shape[1];
        return _bias is null ? (t, null) : (t.narrow(1, 0, d - 1), t.narrow(1, d - 1, 1).flatten());
    }

    /// <summary><paramref name="t"/> in the layer's dtype and device, zero-padded to rows×cols: proposals
    /// may describe the layer as it was when the statistics were taken, and inputs or outputs added
    /// since then get zero weight.</summary>
    Tensor Fit(Tensor t, long rows, long cols)
    {
        t = t.to(_weight.dtype, _weight.device);
        if (t.shape[0] == rows && t.shape[1] == cols) return t;
        var padded = zeros([rows, cols], dtype: _weight.dtype, device: _weight.device);
        padded.narrow(0, 0, t.shape[0]).narrow(1, 0, t.shape[1]).copy_(t);
        return padded;
    }
}
