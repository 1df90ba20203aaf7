namespace OrtSparse.GraphRewriter;

/// <summary>Names from the op contract (docs/ops.md) that the rewriter writes into models.</summary>
public static class SparseAttentionOp
{
    /// <summary>The custom-op domain of every OrtSparse op.</summary>
    public const string Domain = "com.ortsparse";

    /// <summary>The version of <see cref="Domain"/> this rewriter emits.</summary>
    public const long DomainVersion = 1;

    /// <summary>The attention op's type name.</summary>
    public const string OpType = "SparseAttention";

    /// <summary>Input slots of the op, in order.</summary>
    public static readonly IReadOnlyList<string> InputNames =
    [
        "query", "key", "value", "past_key", "past_value", "seqlens_k", "total_sequence_length",
        "cos_cache", "sin_cache", "position_ids", "attention_mask", "past_index", "past_summary",
        "method_data_0", "method_data_1", "method_data_2", "method_data_3",
    ];

    /// <summary>Output slots of the op, in order.</summary>
    public static readonly IReadOnlyList<string> OutputNames =
        ["output", "present_key", "present_value", "present_index", "present_summary", "selected_keys"];

    /// <summary>The index of an input slot by its contract name.</summary>
    /// <param name="name">A name from <see cref="InputNames"/>.</param>
    public static int InputIndex(string name)
    {
        var index = InputNames.ToList().IndexOf(name);
        return index >= 0 ? index : throw new ArgumentException($"SparseAttention has no input named '{name}'.", nameof(name));
    }
}
