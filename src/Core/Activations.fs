/// Activations by name, and their slope at 0⁺ (the σ′(0) of the first-order growth prediction).
module TinyGrow.Core.Activations

open TorchSharp

/// The activation names a layer may use (Model:Layers:N:Activation). The engine applies a
/// junction's activation by name in places (new units' initialisation), so a plugin's layer kind
/// uses these names too.
let known = [ "relu"; "tanh"; "selu"; "gelu"; "identity" ]

let private unknown (name: string) =
    let names = String.concat ", " known
    invalidArg "activation" $"Unknown activation '{name}'. Use one of: {names}."

/// Throws ArgumentException naming `name` and the known names unless it is one of `known`.
let validate (name: string) = if not (List.contains name known) then unknown name

/// σ(z) for the activation `name` (one of `known`): a new tensor (identity: an alias of z).
let apply (name: string) (z: torch.Tensor) : torch.Tensor =
    match name with
    | "relu" -> torch.nn.functional.relu z
    | "tanh" -> torch.tanh z
    | "selu" -> torch.nn.functional.selu z
    | "gelu" -> torch.nn.functional.gelu z
    | "identity" -> z.alias ()
    | other -> unknown other

/// σ′(0⁺), the slope in the first-order prediction γ²(Δ + σ′(0)Σλ²). Exact to first order for
/// smooth σ (tanh, GELU, identity); for ReLU and SELU, which bend at 0, a new neuron's output is
/// σ(γαᵀb̃), not σ′(0⁺)·γαᵀb̃, on samples where αᵀb̃ < 0, so there the prediction is a heuristic
/// and the γ line search on the real loss decides.
let slopeAtZero (name: string) =
    match name with
    | "relu" -> 1.0
    | "tanh" -> 1.0
    | "selu" -> 1.0507009873554805
    | "gelu" -> 0.5
    | "identity" -> 1.0
    | other -> unknown other
