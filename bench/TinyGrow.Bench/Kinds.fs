/// The layer and block kinds the benchmarks build models from (the plugins, referenced directly).
module TinyGrow.Bench.Kinds

open System.Collections.Generic
open TinyGrow.Abstractions
open TinyGrow.Growth.Conv
open TinyGrow.Growth.Linear

let layerKinds =
    Dictionary<string, ILayerKind> (dict [ "dense", DenseKind () :> ILayerKind; "conv", ConvKind () :> ILayerKind ]) :> IReadOnlyDictionary<_, _>

let blockKinds =
    Dictionary<string, IBlockKind> (
        dict [ "mlp", MlpBlockKind () :> IBlockKind; "cnn", CnnBlockKind () :> IBlockKind
               "resnet-stem", ResNetStemKind () :> IBlockKind; "resnet-basic", BasicBlockKind () :> IBlockKind
               "resnet-head", ResNetHeadKind () :> IBlockKind ]) :> IReadOnlyDictionary<_, _>
