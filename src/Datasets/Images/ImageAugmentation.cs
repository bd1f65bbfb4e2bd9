using TinyGrow.Abstractions;

namespace TinyGrow.Datasets.Images;

/// <summary>The standard augmentation of small natural images: a random crop of the image's own size
/// from the image zero-padded by <see cref="CropPadding"/> pixels, and a left–right flip with
/// probability ½, each drawn per sample.</summary>
public sealed record ImageAugmentation(int CropPadding, bool HorizontalFlip)
{
    /// <summary>No augmentation.</summary>
    public static readonly ImageAugmentation None = new(0, false);

    /// <summary>Whether anything random happens.</summary>
    public bool Any => CropPadding > 0 || HorizontalFlip;

    /// <summary>The augmentation configured in the Dataset section (none when Augment is off).</summary>
    public static ImageAugmentation From(DatasetOptions options) =>
        options.Augment ? new ImageAugmentation(options.CropPadding, options.HorizontalFlip) : None;
}
