using OrtSparse.Calibration;

namespace OrtSparse.GraphRewriter;

/// <summary>What one site needs for its method: calibration tensors (from the calibration file, or drawn) and the width of its state.</summary>
/// <param name="Calibration">The method_data inputs, in slot order.</param>
/// <param name="StateWidth">The last dimension of the state tensor (0 without state).</param>
internal sealed record MethodRequirements(IReadOnlyList<MethodWiring.CalibrationInput> Calibration, long StateWidth)
{
    public static MethodRequirements For(MethodConfig method, AttentionSite site, int layer, CalibrationData? calibration)
    {
        int kvHeads = site.KvNumHeads!.Value, heads = site.NumHeads!.Value;
        int HeadDim() => site.HeadDim ?? throw new PatchException($"method '{method.Method}' needs the head size of {site.Kind} node '{site.NodeName}', which the graph does not declare");
        CalibrationData Calibration() => calibration ?? throw new PatchException(
            $"method '{method.Method}' needs calibration: run 'ortsparse calibrate MODEL --tokens FILE -o CALIB' and pass --calibration CALIB");
        MethodWiring.CalibrationInput Slot(int slot, string role, string name, params int[] shape)
        {
            if (!Calibration().ContainsTensor(name))
            {
                throw new PatchException($"the calibration{(Calibration().SourcePath is { } path ? $" file {path}" : "")} has no tensor '{name}' for {site.Kind} node '{site.NodeName}' (layer {layer})");
            }
            var tensor = Calibration().GetTensor(name);
            var matches = shape.Length == tensor.Shape.Count && shape.Zip(tensor.Shape).All(p => p.First < 0 || p.First == p.Second);
            if (!matches)
            {
                throw new PatchException($"calibration tensor '{name}' has shape [{string.Join(", ", tensor.Shape)}], but layer {layer} ({site.NodeName}) needs [{string.Join(", ", shape.Select(d => d < 0 ? "*" : d.ToString()))}]");
            }
            return new MethodWiring.CalibrationInput(slot, role, tensor.Shape.Select(d => (long)d).ToArray(), tensor.Values.ToArray());
        }

        switch (method.Method)
        {
            case "loki":
            {
                var d = HeadDim();
                var rank = (long)method.Parameter("rank", d / 4);
                return new([Slot(0, "loki_basis", CalibrationNames.LokiBasis(layer), kvHeads, d, d)], rank);
            }
            case "quest":
                return new([], 2L * HeadDim());
            case "saap":
            {
                var d = HeadDim();
                var centroids = Slot(0, "saap_centroids", CalibrationNames.SaapCentroids(layer), kvHeads, -1, d);
                var w1 = Slot(1, "saap_w1", CalibrationNames.SaapW1(layer), heads, d, -1);
                var b1 = Slot(2, "saap_b1", CalibrationNames.SaapB1(layer), heads, (int)w1.Shape[2]);
                var w2 = Slot(3, "saap_w2", CalibrationNames.SaapW2(layer), heads, (int)w1.Shape[2] + 1, (int)centroids.Shape[1]);
                return new([centroids, w1, b1, w2], 1);
            }
            case "hash":
            {
                var d = HeadDim();
                var name = CalibrationNames.HashProjections(layer);
                var projections = calibration?.ContainsTensor(name) == true
                    ? Slot(0, "hash_projections", name, kvHeads, -1, d, -1)
                    : Drawn("hash_projections", HashProjectionsFor(method, kvHeads, d, layer));
                return new([projections], projections.Shape[1]);
            }
            case "hyper":
                // Always drawn: [Hkv, 1, D, bits], hash's layout with one round of `bits` hyperplanes.
                return new([Drawn("hyper_hyperplanes", HyperplanesFor(method, kvHeads, HeadDim(), layer))], 0);
            default:
                return new([], 0);
        }
    }

    /// <summary>The most hyperplanes hyper takes: a code's Gray rank and a position pack into 64 bits (docs/ops.md).</summary>
    public const int MaxHyperBits = 24;

    // One stream per layer, so layers do not share projections.
    private static int LayerSeed(MethodConfig method, int layer) => unchecked((int)method.Parameter("seed", 0) * 1000003 + layer);

    private static CalibrationTensor HashProjectionsFor(MethodConfig method, int kvHeads, int headDim, int layer) =>
        HashProjections.Create(kvHeads, (int)method.Parameter("rounds", 2), headDim, (int)method.Parameter("buckets", 16), LayerSeed(method, layer));

    private static CalibrationTensor HyperplanesFor(MethodConfig method, int kvHeads, int headDim, int layer)
    {
        var bits = (int)method.Parameter("bits", 12);
        if (bits < 1 || bits > MaxHyperBits)
        {
            throw new PatchException($"method 'hyper' takes 1 to {MaxHyperBits} bits (hyperplanes per KV head), got {bits}");
        }
        // HashProjections' [Hkv, R, D, NB/2] with R = 1 and NB = 2·bits: bits columns per KV head.
        return HashProjections.Create(kvHeads, 1, headDim, 2 * bits, LayerSeed(method, layer));
    }

    private static MethodWiring.CalibrationInput Drawn(string role, CalibrationTensor tensor) =>
        new(0, role, tensor.Shape.Select(d => (long)d).ToArray(), tensor.Values.ToArray());
}
