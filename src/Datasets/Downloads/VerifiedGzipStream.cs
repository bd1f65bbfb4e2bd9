using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;

namespace TinyGrow.Datasets.Downloads;

/// <summary>
/// Decompresses a single-member gzip file and, once read to its end, checks the file's trailer
/// (CRC-32 and length of the data) against what was actually decompressed. .NET's GZipStream ends
/// silently on a truncated file, so without this a cut archive would extract its first entries as
/// if they were all of it (and a cut IDX file with a damaged block would give other data).
/// </summary>
/// <param name="file">The gzip file, at its start; disposed with this stream.</param>
public sealed class VerifiedGzipStream(FileStream file) : Stream
{
    readonly GZipStream _gzip = new(file, CompressionMode.Decompress);
    readonly Crc32 _crc = new();
    long _length;

    /// <summary>Reads what is left (a tar ends before its gzip stream does), then compares the
    /// trailer; throws <see cref="InvalidDataException"/> when they differ.</summary>
    public void ReadToEndAndVerify(CancellationToken cancellation)
    {
        var buffer = new byte[1 << 16];
        while (Read(buffer, 0, buffer.Length) > 0) cancellation.ThrowIfCancellationRequested();
        Span<byte> trailer = stackalloc byte[8];
        if (file.Length < 18 || RandomAccess.Read(file.SafeFileHandle, trailer, file.Length - 8) != 8)
            throw new InvalidDataException("too short for a gzip file");
        var crc = BinaryPrimitives.ReadUInt32LittleEndian(trailer);
        var size = BinaryPrimitives.ReadUInt32LittleEndian(trailer[4..]);
        if (crc != _crc.GetCurrentHashAsUInt32() || size != (uint)_length)
            throw new InvalidDataException($"the gzip trailer (CRC-32 {crc:x8}, {size} bytes) does not match the data ({_crc.GetCurrentHashAsUInt32():x8}, {_length} bytes): the file is truncated or corrupt");
    }

    /// <inheritdoc />
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <inheritdoc />
    public override int Read(Span<byte> buffer)
    {
        var read = _gzip.Read(buffer);
        _crc.Append(buffer[..read]);
        _length += read;
        return read;
    }

    /// <inheritdoc />
    public override bool CanRead => true;
    /// <inheritdoc />
    public override bool CanSeek => false;
    /// <inheritdoc />
    public override bool CanWrite => false;
    /// <inheritdoc />
    public override long Length => throw new NotSupportedException();
    /// <inheritdoc />
    public override long Position { get => _length; set => throw new NotSupportedException(); }
    /// <inheritdoc />
    public override void Flush() { }
    /// <inheritdoc />
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    /// <inheritdoc />
    public override void SetLength(long value) => throw new NotSupportedException();
    /// <inheritdoc />
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    /// <inheritdoc />
    protected override void Dispose(bool disposing)
    {
        if (disposing) _gzip.Dispose();
        base.Dispose(disposing);
    }
}
