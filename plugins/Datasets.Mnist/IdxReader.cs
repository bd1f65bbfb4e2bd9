using System.Buffers.Binary;
using TinyGrow.Abstractions;
using TinyGrow.Datasets.Downloads;

namespace TinyGrow.Datasets.Mnist;

/// <summary>The header of an IDX file: its magic number and its dimensions.</summary>
public sealed record IdxHeader(int Magic, int[] Dimensions)
{
    /// <summary>Product of the dimensions: the number of data bytes for uint8 data.</summary>
    /// <exception cref="OverflowException">The product does not fit in 64 bits (a corrupt header).</exception>
    public long ElementCount => Dimensions.Aggregate(1L, (n, d) => checked(n * d));
}

/// <summary>uint8 images [Count, Rows, Columns] in one contiguous row-major array.</summary>
public sealed record IdxImages(int Count, int Rows, int Columns, byte[] Pixels);

/// <summary>
/// Reads IDX files (the MNIST format: big-endian header, then uint8 data), raw or gzip-compressed.
/// Every failure is a <see cref="DatasetException"/> whose message starts with the file's path.
/// </summary>
public static class IdxReader
{
    /// <summary>uint8 data, 3 dimensions: images [n, rows, cols].</summary>
    public const int ImagesMagic = 0x00000803;

    /// <summary>uint8 data, 1 dimension: labels [n].</summary>
    public const int LabelsMagic = 0x00000801;

    /// <summary>Reads only the header (cheap even for a large gzip file).</summary>
    public static IdxHeader ReadHeader(string path)
    {
        using var file = Open(path);
        return ReadHeader(file.Stream, path, expectedMagic: null);
    }

    /// <summary>Reads an images file whole.</summary>
    public static IdxImages ReadImages(string path)
    {
        using var file = Open(path);
        var header = ReadHeader(file.Stream, path, ImagesMagic);
        var pixels = ReadData(file, path, header);
        return new IdxImages(header.Dimensions[0], header.Dimensions[1], header.Dimensions[2], pixels);
    }

    /// <summary>Reads a labels file whole and checks that every label is below <paramref name="classes"/>.</summary>
    public static byte[] ReadLabels(string path, int classes)
    {
        using var file = Open(path);
        var header = ReadHeader(file.Stream, path, LabelsMagic);
        var labels = ReadData(file, path, header);
        var bad = Array.FindIndex(labels, l => l >= classes);
        if (bad >= 0)
            throw new DatasetException($"{path}: label {labels[bad]} at index {bad} is out of range (expected 0..{classes - 1}); the file is corrupt or not an IDX labels file of this dataset.");
        return labels;
    }

    // An open IDX file: the stream to read (decompressed if gzip) and, for a raw file, its length in
    // bytes, which bounds what the header may announce before anything is allocated.
    sealed class IdxStream(Stream stream, long? rawLength) : IDisposable
    {
        public Stream Stream { get; } = stream;
        public long? RawLength { get; } = rawLength;
        public void Dispose() => Stream.Dispose();
    }

    // Decide by content, not by name: downloaders often keep gzip data under the raw name or vice versa.
    static IdxStream Open(string path)
    {
        // Asked without opening it: a FIFO in a data file's place would make the open wait for a writer for ever,
        // past the run's stop signals, and a device such as /dev/zero never ends.
        if (FileKind.Of(path).Kind is { } kind)
            throw new DatasetException($"{path} is {kind}, not a regular file. Fix: put the IDX file itself there (raw or .gz).");
        FileStream file;
        try { file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DatasetException($"{path}: cannot open ({e.Message}).", e);
        }
        Span<byte> magic = stackalloc byte[2];
        var isGzip = file.Read(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
        file.Position = 0;
        return isGzip
            ? new IdxStream(new VerifiedGzipStream(file), null)
            : new IdxStream(new BufferedStream(file, 1 << 16), file.Length);
    }

    static IdxHeader ReadHeader(Stream stream, string path, int? expectedMagic)
    {
        var word = new byte[4];
        Fill(stream, path, word, "header");
        var magic = BinaryPrimitives.ReadInt32BigEndian(word);
        if (expectedMagic is int expected && magic != expected)
            throw new DatasetException($"{path}: bad IDX magic number: expected 0x{expected:X8} ({Describe(expected)}), found 0x{magic:X8}. The file is corrupt or is not the expected IDX file.");
        // 0x08 in the third byte means uint8 data; the fourth byte is the number of dimensions.
        if ((magic & ~0xFF) != 0x00000800)
            throw new DatasetException($"{path}: bad IDX magic number: expected 0x000008NN (uint8 data, NN dimensions), found 0x{magic:X8}.");
        var dims = new int[magic & 0xFF];
        for (var i = 0; i < dims.Length; i++)
        {
            Fill(stream, path, word, "header");
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(word);
            if (dims[i] < 0)
                throw new DatasetException($"{path}: negative dimension {dims[i]} in the IDX header.");
        }
        var header = new IdxHeader(magic, dims);
        try { _ = header.ElementCount; }
        catch (OverflowException)
        {
            // Unchecked, the product wraps around: to a negative size (a raw exception) or a small one.
            throw new DatasetException($"{path}: the IDX header's dimensions {string.Join('×', dims)} overflow a 64-bit size; the header is corrupt.");
        }
        return header;
    }

    // One contiguous array per file, so that the caller makes one tensor per split. The size the
    // header announces is never allocated on its word: a raw file's length bounds it before the
    // allocation, and gzip data (whose decompressed length is unknown until its end) is read into a
    // buffer that grows only as bytes actually arrive.
    static byte[] ReadData(IdxStream file, string path, IdxHeader header)
    {
        var expected = header.ElementCount;
        var shape = string.Join('×', header.Dimensions);
        if (file.RawLength is long length)
        {
            var available = length - HeaderBytes(header);
            if (expected > available)
                throw new DatasetException($"{path}: truncated: expected {expected} bytes of data after the header ({shape}), found {Math.Max(available, 0)}. Download the file again.");
            if (expected < available)
                throw new DatasetException($"{path}: longer than its header says ({shape} = {expected} bytes of data, {available} in the file): the header is corrupt.");
        }
        if (expected > Array.MaxLength)
            throw new DatasetException($"{path}: the IDX header announces {expected} bytes, more than one array can hold; the header is corrupt.");
        var data = ReadGrowing(file.Stream, path, (int)expected, out var found);
        if (found < expected)
            throw new DatasetException($"{path}: truncated: expected {expected} bytes of data after the header ({shape}), found {found}. Download the file again.");
        if (SafeReadByte(file.Stream, path) >= 0)
            throw new DatasetException(file.Stream is VerifiedGzipStream
                // Flipped bytes inside a deflate stream often decode to more data, not to an error.
                ? $"{path}: its decompressed data is longer than its header says ({shape} = {expected} bytes of data): the gzip data or the header is corrupt. Download the file again."
                : $"{path}: longer than its header says ({shape} = {expected} bytes of data): the header is corrupt.");
        // .NET's gzip ends quietly where a file is cut: only the trailer tells a complete file.
        if (file.Stream is VerifiedGzipStream gzip)
            try { gzip.ReadToEndAndVerify(CancellationToken.None); }
            catch (Exception e) when (e is IOException or InvalidDataException)
            {
                throw new DatasetException($"{path}: {e.Message}. Download the file again.", e);
            }
        return data;
    }

    static long HeaderBytes(IdxHeader header) => 4L + 4L * header.Dimensions.Length;

    // The first buffer is small, and each next one at most twice the bytes read so far: memory held
    // stays within about three times what the stream really delivered, whatever the header says.
    const int FirstChunk = 1 << 16;

    static byte[] ReadGrowing(Stream stream, string path, int expected, out int found)
    {
        var data = new byte[Math.Min(expected, FirstChunk)];
        found = 0;
        while (true)
        {
            found += ReadUpTo(stream, path, data.AsSpan(found));
            if (found < data.Length || data.Length == expected) return data;
            Array.Resize(ref data, (int)Math.Min(expected, 2L * data.Length));
        }
    }
    static void Fill(Stream stream, string path, byte[] buffer, string what)
    {
        var found = ReadUpTo(stream, path, buffer);
        if (found < buffer.Length)
            throw new DatasetException($"{path}: truncated in the {what}: expected {buffer.Length} more bytes, found {found}. Download the file again.");
    }

    static int ReadUpTo(Stream stream, string path, Span<byte> buffer)
    {
        try { return stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false); }
        catch (Exception e) when (e is IOException or InvalidDataException) { throw Unreadable(stream, path, e); }
    }

    static int SafeReadByte(Stream stream, string path)
    {
        try { return stream.ReadByte(); }
        catch (Exception e) when (e is IOException or InvalidDataException) { throw Unreadable(stream, path, e); }
    }

    // .NET reports damaged deflate data as "unsupported compression method", which reads like a missing feature.
    static DatasetException Unreadable(Stream stream, string path, Exception e) =>
        stream is VerifiedGzipStream && e is InvalidDataException
            ? new DatasetException($"{path}: corrupt gzip data (.NET: {e.Message}). Download the file again.", e)
            : new DatasetException($"{path}: cannot read ({e.Message}). The file is corrupt: download it again.", e);

    static string Describe(int magic) => magic switch
    {
        ImagesMagic => "uint8 images, 3 dimensions",
        LabelsMagic => "uint8 labels, 1 dimension",
        _ => "IDX",
    };
}
