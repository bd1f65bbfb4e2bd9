/// Writes small IDX files (raw or gzip) into a temporary folder that is deleted afterwards.
module TinyGrow.Datasets.Tests.IdxFiles

open System
open System.IO
open System.IO.Compression

let side = 28

/// A known pixel value for image i at (row, col): varied enough to catch a transposed or shifted read.
let pixel (i: int) (row: int) (col: int) = byte ((i * 31 + row * 7 + col * 3) % 256)

let private bigEndian (v: int) =
    [| byte (v >>> 24); byte (v >>> 16); byte (v >>> 8); byte v |]

/// IDX bytes: magic, dimensions (big-endian), then data.
let idxBytes (magic: int) (dims: int[]) (data: byte[]) =
    Array.concat [ yield bigEndian magic
                   yield! Array.map bigEndian dims
                   yield data ]

let imagesBytes (count: int) =
    let data = Array.init (count * side * side) (fun k -> pixel (k / (side * side)) (k / side % side) (k % side))
    idxBytes 0x803 [| count; side; side |] data

let labelsBytes (labels: byte[]) = idxBytes 0x801 [| labels.Length |] labels

let gzip (bytes: byte[]) =
    use out = new MemoryStream ()
    do
        use z = new GZipStream (out, CompressionLevel.Fastest)
        z.Write (bytes, 0, bytes.Length)
    out.ToArray ()

let trainLabels = [| 3uy; 0uy; 9uy |]
let testLabels = [| 7uy; 1uy |]

/// The four files of a small dataset (3 train, 2 test images) in `folder`; `compress` gzips them and adds ".gz".
let writeDataset (folder: string) (compress: bool) =
    Directory.CreateDirectory folder |> ignore
    let write name (bytes: byte[]) =
        if compress then File.WriteAllBytes (Path.Combine (folder, name + ".gz"), gzip bytes)
        else File.WriteAllBytes (Path.Combine (folder, name), bytes)
    write "train-images-idx3-ubyte" (imagesBytes trainLabels.Length)
    write "train-labels-idx1-ubyte" (labelsBytes trainLabels)
    write "t10k-images-idx3-ubyte" (imagesBytes testLabels.Length)
    write "t10k-labels-idx1-ubyte" (labelsBytes testLabels)
