/// CIFAR files in the official binary layout, small, written by the tests; and .tar.gz archives.
module TinyGrow.Datasets.Tests.CifarFiles

open System
open System.Formats.Tar
open System.IO
open System.IO.Compression
open TinyGrow.Datasets.Cifar
open TinyGrow.Datasets.Downloads

/// The byte at (image, channel, row, column): distinct enough that a mix-up of images, channels,
/// rows or columns changes it.
let cifarPixel (image: int) (channel: int) (row: int) (col: int) = byte ((image * 37 + channel * 101 + row * 11 + col * 5) % 256)

/// Records of images firstImage, firstImage+1, ...: each record is its label bytes then 1024 R,
/// 1024 G, 1024 B bytes, row-major.
let recordsBytes (firstImage: int) (labels: byte[] list) =
    [| for k, labelBytes in List.indexed labels do
         yield! labelBytes
         for c in 0 .. 2 do
             for r in 0 .. 31 do
                 for col in 0 .. 31 -> cifarPixel (firstImage + k) c r col |]

/// Small CIFAR-10: five training files of 2 records (images 0–9), a test file of 3 (images 100–102).
let cifar10TrainLabels = [| for k in 0 .. 9 -> byte (k * 3 % 10) |]
let cifar10TestLabels = [| 9uy; 0uy; 4uy |]
let cifar10Files () =
    [ for i in 1 .. 5 -> $"data_batch_{i}.bin", recordsBytes (2 * (i - 1)) [ for k in 2 * (i - 1) .. 2 * i - 1 -> [| cifar10TrainLabels[k] |] ] ]
    @ [ "test_batch.bin", recordsBytes 100 [ for l in cifar10TestLabels -> [| l |] ] ]

/// Small CIFAR-100: train.bin of 4 records (images 0–3), test.bin of 2 (images 100–101); coarse then fine label.
let cifar100Train = [| (0uy, 5uy); (19uy, 99uy); (7uy, 42uy); (3uy, 0uy) |]
let cifar100Test = [| (11uy, 63uy); (0uy, 1uy) |]
let cifar100Files () =
    [ "train.bin", recordsBytes 0 [ for c, f in cifar100Train -> [| c; f |] ]
      "test.bin", recordsBytes 100 [ for c, f in cifar100Test -> [| c; f |] ] ]

let writeFiles (folder: string) (files: (string * byte[]) list) =
    Directory.CreateDirectory folder |> ignore
    for name, bytes in files do File.WriteAllBytes (Path.Combine (folder, name), bytes)

/// The variants with the small files' record counts and, for downloads, the given archive checksum.
let small10 (archiveMd5: string) =
    let v = CifarVariant.Cifar10
    CifarVariant (v.Name, v.Folder, RemoteFile (v.Archive.FileName, archiveMd5), v.ArchiveFolder,
                  [ for i in 1 .. 5 -> CifarFile ($"data_batch_{i}.bin", 2) ], [ CifarFile ("test_batch.bin", 3) ],
                  v.LabelBytes, v.LabelIndex, v.Classes, v.Mean, v.Std)

let small100 (fine: bool) =
    let v = if fine then CifarVariant.Cifar100 else CifarVariant.Cifar100Coarse
    CifarVariant (v.Name, v.Folder, v.Archive, v.ArchiveFolder, [ CifarFile ("train.bin", 4) ], [ CifarFile ("test.bin", 2) ],
                  v.LabelBytes, v.LabelIndex, v.Classes, v.Mean, v.Std)

type Entry =
    | FileEntry of name: string * bytes: byte[]
    | FolderEntry of name: string
    | LinkEntry of name: string * target: string
    | HardLinkEntry of name: string * target: string
    | GlobalEntry

/// An uncompressed tar holding `entries`, written by .NET's TarWriter (PAX format).
let tarBytes (entries: Entry list) =
    use memory = new MemoryStream ()
    do
        use writer = new TarWriter (memory, TarEntryFormat.Pax, true)
        for e in entries do
            // A fixed time, so that the same entries give the same bytes (corruption tests replay).
            let dated (entry: PaxTarEntry) = entry.ModificationTime <- DateTimeOffset (2026, 1, 1, 0, 0, 0, TimeSpan.Zero); entry
            match e with
            | FileEntry (name, bytes) ->
                let entry = dated (PaxTarEntry (TarEntryType.RegularFile, name))
                entry.DataStream <- new MemoryStream (bytes)
                writer.WriteEntry entry
            | FolderEntry name -> writer.WriteEntry (dated (PaxTarEntry (TarEntryType.Directory, name)))
            | LinkEntry (name, target) ->
                writer.WriteEntry (PaxTarEntry (TarEntryType.SymbolicLink, name, LinkName = target))
            | HardLinkEntry (name, target) ->
                writer.WriteEntry (PaxTarEntry (TarEntryType.HardLink, name, LinkName = target))
            | GlobalEntry ->
                writer.WriteEntry (PaxGlobalExtendedAttributesTarEntry (dict [ "comment", "made by a test" ]))
    memory.ToArray ()

/// A .tar.gz holding `entries`.
let tarGz (entries: Entry list) = IdxFiles.gzip (tarBytes entries)

/// The entries of the CIFAR-10 archive as published: everything under cifar-10-batches-bin/.
let cifar10Entries () =
    FolderEntry "cifar-10-batches-bin/" :: [ for name, bytes in cifar10Files () -> FileEntry ("cifar-10-batches-bin/" + name, bytes) ]

/// The CIFAR-10 archive as published.
let cifar10Archive () = tarGz (cifar10Entries ())

let md5 (bytes: byte[]) = System.Convert.ToHexStringLower (System.Security.Cryptography.MD5.HashData bytes)
