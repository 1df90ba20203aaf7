using Onnx;
using OrtSparse.Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>The attributes of a SparseAttention node that describe the attention it replaces (the method adds its own).</summary>
/// <param name="NumHeads">Query heads.</param>
/// <param name="KvNumHeads">Key/value heads.</param>
/// <param name="IsCausal">The is_causal attribute.</param>
internal sealed record AttentionSettings(int NumHeads, int KvNumHeads, bool IsCausal)
{
    /// <summary>The scale, or null for the op's default 1/√D.</summary>
    public float? Scale { get; init; }

    /// <summary>The softcap; 0 disables it.</summary>
    public float Softcap { get; init; }

    /// <summary>Keys a row sees in the op's terms (positions <c>(p − W, p]</c>), or null for no window.</summary>
    public long? LocalWindowSize { get; init; }

    /// <summary>Whether the op applies the rotary embedding (its cos/sin inputs must be wired).</summary>
    public bool DoRotary { get; init; }

    /// <summary>Pairs <c>(x[2i], x[2i+1])</c> instead of halves.</summary>
    public bool RotaryInterleaved { get; init; }
}

/// <summary>Builds com.ortsparse.SparseAttention nodes (docs/ops.md) from contract input and output names.</summary>
internal static class SparseAttentionNode
{
    /// <summary>
    /// A SparseAttention node with the name and doc string of <paramref name="replaced"/>, reading
    /// <paramref name="inputs"/> and writing <paramref name="outputs"/> (keyed by contract slot names;
    /// slots not given stay empty).
    /// </summary>
    public static NodeProto Create(NodeProto replaced, IReadOnlyDictionary<string, string> inputs, IReadOnlyDictionary<string, string> outputs,
        AttentionSettings settings, MethodConfig method)
    {
        var node = new NodeProto
        {
            OpType = SparseAttentionOp.OpType,
            Domain = SparseAttentionOp.Domain,
            Name = replaced.Name,
            DocString = replaced.DocString,
        };
        node.Input.Add(Slots(SparseAttentionOp.InputNames, inputs));
        node.Output.Add(Slots(SparseAttentionOp.OutputNames, outputs));
        node.Attribute.Add(OnnxBuilder.IntAttribute("num_heads", settings.NumHeads));
        node.Attribute.Add(OnnxBuilder.IntAttribute("kv_num_heads", settings.KvNumHeads));
        node.Attribute.Add(OnnxBuilder.IntAttribute("is_causal", settings.IsCausal ? 1 : 0));
        if (settings.Scale is { } scale)
        {
            node.Attribute.Add(OnnxBuilder.FloatAttribute("scale", scale));
        }
        if (settings.Softcap != 0)
        {
            node.Attribute.Add(OnnxBuilder.FloatAttribute("softcap", settings.Softcap));
        }
        if (settings.LocalWindowSize is { } window)
        {
            node.Attribute.Add(OnnxBuilder.IntAttribute("local_window_size", window));
        }
        if (settings.DoRotary)
        {
            node.Attribute.Add(OnnxBuilder.IntAttribute("do_rotary", 1));
            node.Attribute.Add(OnnxBuilder.IntAttribute("rotary_interleaved", settings.RotaryInterleaved ? 1 : 0));
        }
        node.Attribute.Add(OnnxBuilder.StringAttribute("method", method.Method));
        foreach (var parameter in method.Spec.Parameters.Where(p => p.IsAttribute && method.Parameters.ContainsKey(p.Name)))
        {
            var setting = method.Parameters[parameter.Name];
            node.Attribute.Add(parameter.Kind == ParameterKind.Int
                ? OnnxBuilder.IntAttribute(parameter.Name, (long)setting)
                : OnnxBuilder.FloatAttribute(parameter.Name, (float)setting));
        }
        return node;
    }

    /// <summary>Sets <paramref name="slot"/> when <paramref name="value"/> is given.</summary>
    public static void AddIfGiven(Dictionary<string, string> slots, string slot, string? value)
    {
        if (value is not null)
        {
            slots[slot] = value;
        }
    }

    /// <summary>The value names in slot order, "" for slots not given, without trailing empty slots.</summary>
    private static IEnumerable<string> Slots(IReadOnlyList<string> slotNames, IReadOnlyDictionary<string, string> given)
    {
        var unknown = given.Keys.Except(slotNames).ToList();
        if (unknown.Count > 0)
        {
            throw new ArgumentException($"SparseAttention has no slot named {string.Join(", ", unknown.Select(u => $"'{u}'"))}.", nameof(given));
        }
        var values = slotNames.Select(slot => given.TryGetValue(slot, out var value) ? value : "").ToList();
        return values.Take(values.FindLastIndex(v => v.Length > 0) + 1);
    }
}
