using Onnx;

namespace OrtSparse.GraphRewriter;

/// <summary>Reading attributes and optional inputs of a node.</summary>
internal static class NodeExtensions
{
    public static AttributeProto? Attribute(this NodeProto node, string name) =>
        node.Attribute.FirstOrDefault(a => a.Name == name);

    public static long? IntAttribute(this NodeProto node, string name) =>
        node.Attribute(name) is { Type: AttributeProto.Types.AttributeType.Int } a ? a.I : null;

    public static float? FloatAttribute(this NodeProto node, string name) =>
        node.Attribute(name) is { Type: AttributeProto.Types.AttributeType.Float } a ? a.F : null;

    /// <summary>The name wired to input <paramref name="index"/>, or null when absent or empty (an omitted optional input).</summary>
    public static string? OptionalInput(this NodeProto node, int index) =>
        index < node.Input.Count && node.Input[index].Length > 0 ? node.Input[index] : null;

    /// <summary>The name wired to output <paramref name="index"/>, or null when absent or empty.</summary>
    public static string? OptionalOutput(this NodeProto node, int index) =>
        index < node.Output.Count && node.Output[index].Length > 0 ? node.Output[index] : null;
}
