using TinyGrow.Abstractions;
using TorchSharp;

namespace TinyGrow.Datasets.Images;

/// <summary>Builds a <see cref="DataSplit"/> on the device from images read on the CPU.</summary>
public static class ImageSplit
{
    /// <summary>Moves <paramref name="pixels"/> (uint8 [n, C, H, W] on the CPU; disposed here) to
    /// <paramref name="device"/> once, and the class bytes as the int64 indices cross-entropy wants.
    /// On the CPU the pixel tensor is kept as it is (no copy).</summary>
    public static DataSplit OnDevice(torch.Tensor pixels, byte[] labels, torch.Device device)
    {
        using (pixels)
        {
            using var scope = torch.NewDisposeScope();
            var samples = pixels.to(device).alias();
            using var labelBytes = torch.tensor(labels, [labels.Length], dtype: torch.uint8);
            var targets = labelBytes.to(device).to(torch.int64);
            scope.MoveToOuter(samples);
            scope.MoveToOuter(targets);
            return new DataSplit(samples, targets);
        }
    }
}
