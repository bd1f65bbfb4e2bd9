using TinyGrow.Abstractions;
using TorchSharp;
using static TorchSharp.torch;

namespace TinyGrow.Datasets.Images;

/// <summary>
/// uint8 images [b, C, H, W] → float32 inputs normalised per channel, (x/255 − mean)/std, on the
/// images' device. Training batches are first cropped and flipped per sample
/// (<see cref="ImageAugmentation"/>) by one gather over the padded batch: no per-sample tensors
/// and no host round trip of pixels; only 3 small integers per sample are drawn on the CPU.
/// </summary>
/// <remarks>
/// Padding with 0 happens on the uint8 pixels, before normalisation, as torchvision's
/// RandomCrop(padding=4) does on images: the border is black, not the mean.
/// </remarks>
public sealed class ImagePipeline : IInputPipeline, IDisposable
{
    readonly Tensor _scale; // 1/(255·std), shape [C, 1, 1]
    readonly Tensor _shift; // mean/std, shape [C, 1, 1]

    /// <param name="mean">Per-channel mean of x/255 over the training set.</param>
    /// <param name="std">Per-channel standard deviation of x/255 over the training set.</param>
    /// <param name="augmentation">What <see cref="AugmentedInputs"/> does.</param>
    /// <param name="device">Where the images live.</param>
    public ImagePipeline(IReadOnlyList<float> mean, IReadOnlyList<float> std, ImageAugmentation augmentation, Device device)
    {
        if (mean.Count == 0 || mean.Count != std.Count)
            throw new ArgumentException($"mean ({mean.Count} values) and std ({std.Count} values) must give one value per channel.");
        if (std.Any(s => !(s > 0)))
            throw new ArgumentException("Every standard deviation must be positive.", nameof(std));
        Channels = mean.Count;
        Augmentation = augmentation;
        _scale = tensor(std.Select(s => (float)(1.0 / (255.0 * s))).ToArray(), [Channels, 1, 1], device: device);
        _shift = tensor(mean.Zip(std, (m, s) => (float)(m / (double)s)).ToArray(), [Channels, 1, 1], device: device);
    }

    /// <summary>Number of channels.</summary>
    public int Channels { get; }

    /// <summary>What training batches get.</summary>
    public ImageAugmentation Augmentation { get; }

    /// <inheritdoc />
    public Tensor Inputs(Tensor samples)
    {
        CheckShape(samples);
        return samples.to(ScalarType.Float32).mul_(_scale).sub_(_shift);
    }

    /// <inheritdoc />
    public Tensor AugmentedInputs(Tensor samples, Generator generator)
    {
        if (!Augmentation.Any) return Inputs(samples);
        CheckShape(samples);
        using var scope = NewDisposeScope();
        var result = Inputs(Crop(samples, generator));
        return scope.MoveToOuter(result);
    }

    /// <summary>The augmented uint8 images before normalisation: for each sample, the window of the
    /// zero-padded image at a random offset, mirrored left–right at random. Draws from
    /// <paramref name="generator"/>, in this order and only when enabled: row offsets and column
    /// offsets (when CropPadding &gt; 0), then flips (when HorizontalFlip), each [b].</summary>
    public Tensor Crop(Tensor samples, Generator generator)
    {
        CheckShape(samples);
        using var scope = NewDisposeScope();
        long b = samples.shape[0], c = samples.shape[1], h = samples.shape[2], w = samples.shape[3];
        long p = Augmentation.CropPadding;
        var device = samples.device;
        var padded = p > 0 ? nn.functional.pad(samples, [p, p, p, p]) : samples;
        long paddedWidth = w + 2 * p;
        // Random draws on the CPU generator, then moved: the same seed gives the same batches on any device.
        var rowOffset = p > 0 ? randint(0, 2 * p + 1, [b], dtype: ScalarType.Int64, generator: generator).to(device) : zeros([b], ScalarType.Int64, device);
        var colOffset = p > 0 ? randint(0, 2 * p + 1, [b], dtype: ScalarType.Int64, generator: generator).to(device) : zeros([b], ScalarType.Int64, device);
        var columns = arange(w, dtype: ScalarType.Int64, device: device).expand(b, w);
        if (Augmentation.HorizontalFlip)
        {
            var flip = randint(0, 2, [b], dtype: ScalarType.Int64, generator: generator).to(device).eq(1).unsqueeze(1);
            columns = where(flip, columns.flip(1), columns);
        }
        var rows = rowOffset.unsqueeze(1) + arange(h, dtype: ScalarType.Int64, device: device);   // [b, h]
        columns = colOffset.unsqueeze(1) + columns;                                              // [b, w]
        var index = (rows.unsqueeze(2) * paddedWidth + columns.unsqueeze(1)).view(b, 1, h * w).expand(b, c, h * w);
        var cropped = padded.reshape(b, c, -1).gather(2, index).view(b, c, h, w);
        return scope.MoveToOuter(cropped);
    }

    /// <summary>What the pipeline does, for the run's log.</summary>
    public override string ToString() =>
        (Augmentation.CropPadding, Augmentation.HorizontalFlip) switch
        {
            (0, false) => "inputs normalised per channel, no augmentation",
            (var p, var flip) => "inputs normalised per channel; training batches " + string.Join(" and ",
                new[] { p > 0 ? $"randomly cropped (zero padding {p})" : null, flip ? "flipped left–right at random" : null }.OfType<string>()) + ", per sample",
        };

    // uint8 only: the conversion to float32 then always makes a new tensor, so the in-place
    // normalisation can never write into the stored split.
    void CheckShape(Tensor samples)
    {
        if (samples.dim() != 4 || samples.shape[1] != Channels || samples.dtype != ScalarType.Byte)
            throw new ArgumentException($"Expected uint8 images of shape [b, {Channels}, H, W], got {samples.dtype} [{string.Join(", ", samples.shape)}].", nameof(samples));
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _scale.Dispose();
        _shift.Dispose();
    }
}
