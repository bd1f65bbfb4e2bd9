using System.ComponentModel.DataAnnotations;

namespace TinyGrow.Abstractions;

// Option records bound from configuration sections of the same name (appsettings.json, an
// experiment file, environment, command line). The host validates them at start.

/// <summary>Section "Dataset".</summary>
public sealed class DatasetOptions
{
    /// <summary>Dataset name served by a dataset plugin, e.g. "fashion-mnist".</summary>
    [Required] public string Name { get; set; } = "fashion-mnist";
    /// <summary>Folder searched first for the dataset's files, and where downloads go.</summary>
    public string Root { get; set; } = "data";
    /// <summary>Whether a dataset missing from disk is downloaded (once, verified against its
    /// published checksum) into <see cref="Root"/>. Off: a missing dataset is an error that says
    /// where to put the files.</summary>
    public bool Download { get; set; } = true;
    /// <summary>Base address used instead of the dataset's official one, e.g.
    /// "http://mirror.lan/datasets/"; the official file names are appended to it. Empty: none.</summary>
    [RegularExpression(@"^(https?://\S+)?$", ErrorMessage = "Use an http:// or https:// address (or nothing for the official one).")]
    public string? Mirror { get; set; }
    /// <summary>Seconds a download may go without receiving a byte before it is abandoned.</summary>
    [Range(1, 3600)] public int DownloadStallSeconds { get; set; } = 60;
    /// <summary>Whether training batches get the dataset's standard augmentation (CIFAR: random
    /// crop with zero padding and horizontal flip, drawn per sample). Datasets without a standard
    /// augmentation (MNIST: flipping digits changes them) ignore it.</summary>
    public bool Augment { get; set; } = true;
    /// <summary>Zero padding, in pixels, around an image before a random crop of its own size (0: no crop).</summary>
    [Range(0, 64)] public int CropPadding { get; set; } = 4;
    /// <summary>Whether each training image is flipped left–right with probability ½.</summary>
    public bool HorizontalFlip { get; set; } = true;
    /// <summary>Use only the first N training samples (0: all): smoke runs and quick trials.</summary>
    [Range(0, 100_000_000)] public int TrainSamples { get; set; }
    /// <summary>Use only the first N test samples (0: all).</summary>
    [Range(0, 100_000_000)] public int TestSamples { get; set; }
}

/// <summary>Section "Model": a preset, or hidden layers in list form (the output layer is added
/// with one neuron per class). Dense layers only: a multilayer perceptron; conv layers first, then
/// optional dense layers: a CNN whose feature maps enter the dense part through <see cref="Head"/>.</summary>
public sealed class ModelOptions
{
    /// <summary>Hidden layers in order, each with its starting width (ignored with a preset).</summary>
    public List<LayerSpec> Layers { get; set; } = new();
    /// <summary>Whether the output layer has a bias.</summary>
    public bool OutputBias { get; set; } = true;
    /// <summary>"" (use <see cref="Layers"/>), "resnet18" (CIFAR form: 3×3 stem, no max pool, four stages
    /// of two BasicBlocks whose inner channels grow toward 64/128/256/512) or "resnet20" (He et al. 2016's
    /// CIFAR ResNet: three stages of three BasicBlocks, 16/32/64; small enough for a CPU).</summary>
    [RegularExpression("^(|resnet18|resnet20)$", ErrorMessage = "Use \"resnet18\", \"resnet20\" or leave it empty to use Model:Layers.")]
    public string Preset { get; set; } = "";
    /// <summary>A preset's starting inner widths as a fraction of its full widths (1/64 gives 1/2/4/8
    /// for ResNet-18); the full widths are the maxima growth may reach.</summary>
    [Range(1e-6, 1.0)] public double WidthFraction { get; set; } = 1.0 / 64.0;
    /// <summary>A preset's starting inner widths block by block (empty: from <see cref="WidthFraction"/>); one
    /// per BasicBlock (8 for resnet18, 9 for resnet20), each at most its stage's width. For fixing a preset at
    /// the widths a grown run ended with.</summary>
    public List<int> InnerWidths { get; set; } = new();
    /// <summary>A preset's largest inner widths block by block (empty: its stages' widths), each at least the
    /// block's starting width and at most its stage's width.</summary>
    public List<int> InnerMaxWidths { get; set; } = new();
    /// <summary>How a CNN's last feature maps enter its dense layers: "gap" (global average pool) or
    /// "flatten". Both are junctions that grow the last conv.</summary>
    [RegularExpression("^(gap|flatten)$")] public string Head { get; set; } = "gap";
    /// <summary>How a new channel's fan-out enters the conv (or flatten) after it (DESIGN §4.3):
    /// "restricted" (default: the kernel's centre tap only, and S2 from the same aligned patches as
    /// N, exact for any stride, padding, dilation) or "full" (every tap, or every position after a
    /// flatten: more freedom per neuron, at k·k times the statistics of M2 and P, with S2 summed over
    /// taps, ignoring cross-tap terms).</summary>
    [RegularExpression("^(restricted|full)$", ErrorMessage = "Use \"restricted\" or \"full\".")]
    public string ConvFanOut { get; set; } = "restricted";
}

/// <summary>Section "Training".</summary>
public sealed class TrainingOptions
{
    /// <summary>Epochs of training.</summary>
    [Range(1, 100_000)] public int Epochs { get; set; } = 10;
    /// <summary>Mini-batch size.</summary>
    [Range(1, 1_000_000)] public int BatchSize { get; set; } = 128;
    /// <summary>"sgd" (with momentum) or "adam".</summary>
    [RegularExpression("^(sgd|adam)$")] public string Optimizer { get; set; } = "sgd";
    /// <summary>Learning rate.</summary>
    [Range(1e-12, 100.0)] public double LearningRate { get; set; } = 0.05;
    /// <summary>SGD momentum.</summary>
    [Range(0.0, 0.9999)] public double Momentum { get; set; } = 0.9;
    /// <summary>L2 weight decay.</summary>
    [Range(0.0, 1.0)] public double WeightDecay { get; set; } = 0.0;
    /// <summary>Cosine decay of the learning rate to zero over the run.</summary>
    public bool CosineSchedule { get; set; } = true;
    /// <summary>Random seed (weights, shuffling, growth).</summary>
    public long Seed { get; set; } = 1;
    /// <summary>Intra-op CPU threads of the run (libtorch's OpenMP pool). 0 (auto): one thread for a network
    /// of dense layers on the CPU, whose small kernels lose more at the threads' barriers than they gain
    /// (docs/notebook/2026-11-30-cpu-threads.md), and libtorch's default (one per core) otherwise.</summary>
    [Range(0, 1024)] public int Threads { get; set; } = 0;
}

/// <summary>Section "Growth": the strategy and the schedule.</summary>
public sealed class GrowthOptions
{
    /// <summary>Strategy name served by a strategy plugin ("tiny"), or "none" for a fixed network.</summary>
    [Required] public string Strategy { get; set; } = "tiny";
    /// <summary>Growth steps per epoch, evenly spaced in the epoch. The defaults (12 steps, epoch 1 only) put
    /// all growth in the first epoch: the network then trains at its final widths for the rest of the run
    /// (Fashion-MNIST, 5 seeds: +0.17 points on every seed against 4 steps in epochs 1–3, same cost).</summary>
    [Range(0, 1000)] public int StepsPerEpoch { get; set; } = 12;
    /// <summary>No growth after this many epochs (then the network trains at its final widths).</summary>
    [Range(0, 100_000)] public int UntilEpoch { get; set; } = 1;
    /// <summary>Training samples of a statistics pass or window (the input covariance kept for the run takes twice as many).
    /// 512 (was 1,024, with GammaSearchSamples): on the default run, 10 seeds, growth went from 7.1 to 5.4 % of the run and
    /// the accuracy from 88.70 to 88.79 % on average; on CIFAR-dense the mean held but the spread across seeds grew
    /// (docs/notebook/2026-12-07-default-run-samples.md). Larger networks and the significance tests want more: the
    /// experiments set their own.</summary>
    [Range(1, 10_000_000)] public int StatisticsSamples { get; set; } = 512;
    /// <summary>Training samples the input covariance kept for the run is taken on (the S2 and whitening of a
    /// junction whose A reads the network's input); 0 (the default): 2·StatisticsSamples. Its cold cost is a
    /// statistics pass over them and a factorisation of rank at most their number. Fewer samples cost less
    /// and give a noisier covariance: its sampling error grows as 1/√samples (1,024 instead of 2,048: √2 times
    /// the noise in every entry of S2). Measured on CIFAR-10-shaped data (D2 = 3,073, 5 epochs, 4 seeds),
    /// 1,024 samples took growth from 3.95 to 2.69 s per run and kept the accuracy within the seed spread
    /// (40.86 ± 0.52 against 40.95 ± 0.30 %); Fashion-MNIST 88.73 ± 0.07 against 88.82 ± 0.17 %
    /// (docs/notebook/2026-12-06-input-statistics-cache.md). A cached covariance costs nothing either way.</summary>
    [Range(0, 10_000_000)] public int InputStatisticsSamples { get; set; } = 0;
    /// <summary>How the whitening W of the input covariance kept for the run (WᵀW = S2⁺) is factorised: "exact"
    /// (Cholesky or eigh of S2, or, with fewer samples than inputs, a QR of the rows and an eigh of samples²) or
    /// "randomized" (a randomised range finder on the rows, or on S2 when the rows are as many as its size: sketches of
    /// 64, 128, 256, … columns until the cutoff drops the last quarter of them, so the rank kept is the one the cutoff
    /// finds; a product costs samples·inputs·columns instead of the exact path's samples²·inputs). A cache entry of one
    /// kind is never read for the other.</summary>
    [RegularExpression("^(exact|randomized)$", ErrorMessage = "Use \"exact\" or \"randomized\".")]
    public string InputFactor { get; set; } = "exact";
    /// <summary>Where a growth step's statistics come from (DESIGN §4.5): "pass", a forward and backward of its own over
    /// StatisticsSamples training samples drawn at the growth point; or "training", the training batches themselves
    /// (about StatisticsSamples of them after the growth point, the junctions growing once their window is summed): no
    /// extra forward or backward, but the weights move while the window is summed.</summary>
    [RegularExpression("^(pass|training)$")] public string StatisticsFrom { get; set; } = "training";
    /// <summary>One statistics window (or pass) for every junction of a growth step: each junction grows from it in turn,
    /// except one whose layers a junction grown before it in the step widened (an MLP's or a CNN's next junction: its
    /// statistics no longer have the network's shapes), which gets a window (or pass) of its own. False: every junction
    /// after one that grew gets its own, so its statistics describe the network after the growth before it; with windows
    /// of about StatisticsSamples training samples per junction, a step over n junctions then spans n windows of training
    /// (ResNet-20: 9 windows of 8 batches, more than the 47 batches of an epoch of the 6,000-sample protocol).</summary>
    public bool SharedStatistics { get; set; } = false;
    /// <summary>A γ search's chosen candidate is kept only if its held-out decrease is at least this many standard errors of
    /// the per-sample loss differences (a paired z on the GammaSearchSamples; one more loss evaluation per accepted
    /// search): a decrease the held-out samples cannot tell from noise adds nothing, so a junction whose proposals no
    /// longer help stops growing (its width set by the bottleneck). 0: only the float32 rounding margin of the loss.</summary>
    [Range(0.0, 100.0)] public double AcceptanceZ { get; set; } = 0.0;
    /// <summary>Measure, for every accepted γ search, the held-out decrease at γ/16 over the prediction there
    /// (slope_over_predicted in metrics.jsonl): whether the first-order prediction's slope is the held-out one. A
    /// diagnostic of the prediction, one more loss evaluation per accepted search (about a fifth of the default run's
    /// search evaluations), so off unless asked for.</summary>
    public bool SlopeProbe { get; set; } = false;
    /// <summary>Held-out training samples for the γ line search: disjoint from a statistics pass's samples; with
    /// StatisticsFrom = "training" drawn from the whole split, so a few may have been in the window.
    /// 512 with StatisticsSamples (see there).</summary>
    [Range(1, 10_000_000)] public int GammaSearchSamples { get; set; } = 512;
    /// <summary>Statistics rows drawn per dimension of the largest statistic (DESIGN §4.3): a junction
    /// keeps about RowsPerDimension·max(D1, D2) of its (sample, position) rows, drawn at random,
    /// the same rows for every statistic. 0 keeps every row.</summary>
    [Range(0, 1_000_000)] public int RowsPerDimension { get; set; } = 32;
    /// <summary>Most neurons added to one junction in one step.</summary>
    [Range(1, 100_000)] public int NeuronsPerStep { get; set; } = 32;
    /// <summary>A direction k is kept only if λ_k ≥ RelativeThreshold·λ_1.</summary>
    [Range(0.0, 1.0)] public double RelativeThreshold { get; set; } = 0.01;
    /// <summary>A proposed neuron k is kept only if its share of the first-order decrease, λ_k², exceeds
    /// NoiseFloor·tr(E) (E: the whole desired update): below that it is rounding noise, even as λ_1.</summary>
    [Range(0.0, 1.0)] public double NoiseFloor { get; set; } = 1e-10;
    /// <summary>Eigenvalues below EigenCutoff·λmax are dropped in pseudo-inverses (relative, never absolute). 1e-3 keeps
    /// δ = S⁺M, the update of existing weights growth applies, off the near-null directions of S (measured better for
    /// dense networks, and it kept a ReLU run from diverging); CNNs measured better at 1e-10, which the conv
    /// experiments set (docs/notebook/2026-11-30-eigenvalue-cutoff.md).</summary>
    [Range(1e-15, 1.0)] public double EigenCutoff { get; set; } = 1e-3;
    /// <summary>Also apply the best update δ of existing weights (W_B ← W_B − γ²δ).</summary>
    public bool UseDelta { get; set; } = true;
    /// <summary>"all": every junction each step; "best": the junction with the largest predicted decrease per added
    /// parameter; "roundrobin": one junction per step, in turn.</summary>
    [RegularExpression("^(all|best|roundrobin)$")] public string Selection { get; set; } = "all";
    /// <summary>Amplitude bound (DESIGN §4.6): γ is searched only where every new neuron's pre-activation spread
    /// (root mean square on the held-out samples) is at most AmplitudeSpread × the median spread of the layer's
    /// existing neurons. 0 turns the bound off. Not applied to identity activations (they cannot saturate). For unit new
    /// units (NewUnits) the features are at scale and the bound is on the fan-out: every new column's norm at most
    /// AmplitudeSpread × the median norm of B's existing columns.</summary>
    [Range(0.0, 1e6)] public double AmplitudeSpread { get; set; } = 2.0;
    /// <summary>How new neurons of a junction with a normalisation after A (conv → BatchNorm → σ) enter
    /// (DESIGN §4.7): "unit": fan-in rows at the norm of A's existing rows, the new BatchNorm channel at
    /// weight 1 and bias 0 (a unit-scale feature, as a unit trained from the start), the fan-out refitted by
    /// least squares on the actual new features σ(BN(αᵀb̃)) and the amplitude γ on the fan-out and δ only
    /// (the change is linear in γ); "scaled": γ on fan-in and fan-out, the BatchNorm channel matched to pass
    /// γ·αᵀb̃ through (exact function preservation, but new units that train slowly). Junctions without a
    /// normalisation follow <see cref="DenseNewUnits"/>.</summary>
    [RegularExpression("^(unit|scaled)$")] public string NewUnits { get; set; } = "unit";
    /// <summary>How new neurons of a dense A without a normalisation enter (an MLP's hidden layers, a CNN's dense
    /// layer): "init": each fan-in rescaled so that its pre-activation's RMS over the statistics rows is the one a
    /// row of the dense kind's own initialisation gives, √(tr S2 / (3·fan_in)), its fan-out divided by the same
    /// factor (the same linear function at first order), the amplitude γ on the fan-out and δ only; "scaled": γ
    /// on fan-in and fan-out, so that a unit added at a small γ starts with both factors small and, under SGD,
    /// stays small (each factor's gradient is proportional to the other).</summary>
    [RegularExpression("^(init|scaled)$")] public string DenseNewUnits { get; set; } = "init";
    /// <summary>With NewUnits = "unit", how many of the strategy's neurons a junction takes: "strategy" (all it
    /// proposes) or "crossvalidated" (the number with the best first-order decrease on held-out folds of the
    /// statistics rows, 0 unless its gain exceeds two standard errors). The prediction is cross-validated
    /// either way.</summary>
    [RegularExpression("^(strategy|crossvalidated)$")] public string NewUnitsCount { get; set; } = "strategy";
    /// <summary>With NewUnits = "unit": rows of a conv junction's row sample (the fan-out refit and the cross-validated
    /// prediction), drawn at random from every (sample, position) row of the statistics' batches. 0: at most 4,096 of the
    /// rows the sums use (RowsPerDimension·RowSize per pass: a few hundred for a narrow junction), whose cross-validated
    /// gain is mostly noise. Memory: rows × (D1 + D2 + outputs) float64.</summary>
    [Range(0, 10_000_000)] public int CrossValidationRows { get; set; } = 0;
    /// <summary>Growth that stops by itself (DESIGN §4.1): "none", or "signflip": a direction k is kept only if
    /// λ_k exceeds SignificanceFactor × the noise floor of N, the SignificanceConfidence quantile of the top singular
    /// value of sign-flipped group deviations of N (SignificanceGroups groups: whole batches in a pass, every batch split by sample in a window; SignificanceDraws
    /// draws), in the same space as λ (whitened or not). Widths are then set by the bottleneck; MaxWidth is a cap.</summary>
    [RegularExpression("^(none|signflip)$")] public string SignificanceTest { get; set; } = "none";
    /// <summary>Groups the statistics samples are split into for the significance test (whole batches in a pass; every batch split by sample in a window).</summary>
    [Range(4, 1024)] public int SignificanceGroups { get; set; } = 16;
    /// <summary>Random sign draws of the significance test's null.</summary>
    [Range(8, 10_000)] public int SignificanceDraws { get; set; } = 64;
    /// <summary>Quantile of the null's top singular value taken as the noise floor.</summary>
    [Range(0.5, 1.0)] public double SignificanceConfidence { get; set; } = 0.95;
    /// <summary>λ_k must exceed this many times the noise floor.</summary>
    [Range(1.0, 1000.0)] public double SignificanceFactor { get; set; } = 1.0;
    /// <summary>Growth stops for good once this many scheduled growth steps in a row have added no neuron (with a
    /// SignificanceTest: every junction's test said no): the network then trains at its widths for the rest of the run.
    /// 0: never; the schedule (StepsPerEpoch, UntilEpoch) alone ends growth.</summary>
    [Range(0, 100_000)] public int StopAfterEmptySteps { get; set; } = 0;
    /// <summary>Seconds a growth strategy may take to propose for one junction; longer is a plugin fault (exit 4).
    /// While a call runs, the log says so every 15 s.</summary>
    [Range(1, 86_400)] public int StrategyTimeoutSeconds { get; set; } = 600;
}

/// <summary>Section "Output".</summary>
public sealed class OutputOptions
{
    /// <summary>Runs are written to &lt;Directory&gt;/&lt;run-id&gt;/.</summary>
    [Required] public string Directory { get; set; } = "runs";
    /// <summary>Run id; empty means a timestamp.</summary>
    public string RunId { get; set; } = "";
    /// <summary>How a run shows its progress: "live" redraws a display on the terminal (epochs, batches,
    /// widths, growth steps, downloads), "plain" writes a log line every few seconds, "auto" (the
    /// default) is live when standard output and error are both a terminal (TERM not dumb) and plain
    /// otherwise (a daemon's job, CI, a pipe, a file).</summary>
    [RegularExpression("^(auto|live|plain)$", ErrorMessage = "Use auto, live or plain.")]
    public string Progress { get; set; } = "auto";
    /// <summary>Folder of the input statistics cache: the input covariance and whitening of a junction
    /// whose A reads the network's input depend only on the data, so a run reads them from here instead
    /// of computing them (a 3,073² covariance and its factorisation on CIFAR-10) when an earlier run on the
    /// same inputs wrote them. An entry's key is the SHA-256 of the inputs the statistics are taken on
    /// (the first Growth:InputStatisticsSamples, by default 2·Growth:StatisticsSamples, training samples as the network sees them: after the
    /// loader, the normalisation and, with Growth:StatisticsFrom = training, the augmentation, drawn
    /// the same for every seed), their shape and dtype, the junction's rows (layer kind, kernel, bias)
    /// and Growth:RowsPerDimension, Growth:EigenCutoff and Growth:InputFactor; an entry is checked against its SHA-256 when
    /// read, and a damaged one is computed again with a warning. Empty (the default):
    /// &lt;Output:Directory&gt;/.cache, shared by the runs written there; "off": no cache, every run
    /// computes them. A folder that cannot be written costs a warning, not the run.</summary>
    public string CacheDirectory { get; set; } = "";

    /// <summary>The cache folder <see cref="CacheDirectory"/> stands for, absolute, or null when it is "off".</summary>
    public string? ResolvedCacheDirectory() =>
        CacheDirectory switch
        {
            "off" => null,
            "" => System.IO.Path.GetFullPath(System.IO.Path.Combine(Directory, ".cache")),
            var folder => System.IO.Path.GetFullPath(folder),
        };
}

/// <summary>Section "Checkpoint": when a run writes <c>checkpoint.bin</c> in its folder (everything
/// <c>tinygrow resume</c> needs to continue it exactly).</summary>
public sealed class CheckpointOptions
{
    /// <summary>Seconds of training between two checkpoints (checked after each batch); 0: none on a timer.</summary>
    [Range(0.0, 1e9)] public double EverySeconds { get; set; } = 300;
    /// <summary>Also checkpoint right after every growth step.</summary>
    public bool AfterGrowth { get; set; } = true;
    /// <summary>Checkpoint when the run is asked to stop (SIGTERM, Ctrl-C) before it exits.</summary>
    public bool OnStop { get; set; } = true;
}
