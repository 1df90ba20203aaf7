namespace OrtSparse.Calibration;

/// <summary>A float tensor of calibration data: a shape and its elements in row-major order.</summary>
public sealed class CalibrationTensor
{
    private readonly int[] _shape;

    /// <summary>Wraps <paramref name="values"/> without copying; the tensor owns the array from now on.</summary>
    /// <param name="values">The elements, row-major.</param>
    /// <param name="shape">The dimensions; their product must equal the number of values.</param>
    public CalibrationTensor(float[] values, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentNullException.ThrowIfNull(shape);
        long count = 1;
        foreach (var dim in shape)
        {
            if (dim < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(shape), $"shape {Check.Shape(shape)} has a negative dimension");
            }
            count *= dim;
        }
        if (count != values.Length)
        {
            throw new ArgumentException($"shape {Check.Shape(shape)} holds {count} elements, but {values.Length} values were given", nameof(values));
        }
        _shape = (int[])shape.Clone();
        Values = values;
    }

    /// <summary>The dimensions.</summary>
    public IReadOnlyList<int> Shape => _shape;

    /// <summary>The elements, row-major.</summary>
    public ReadOnlyMemory<float> Values { get; }

    /// <summary>
    /// Stacks tensors of one shape along a new leading axis, e.g. one PCA basis per KV head
    /// <c>[D, D]</c> into the op's <c>[Hkv, D, D]</c>.
    /// </summary>
    /// <param name="parts">At least one tensor; all of the same shape.</param>
    public static CalibrationTensor Stack(IReadOnlyList<CalibrationTensor> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        if (parts.Count == 0)
        {
            throw new ArgumentException("there must be at least one tensor to stack", nameof(parts));
        }
        var partShape = parts[0]._shape;
        var partLength = parts[0].Values.Length;
        var values = new float[(long)partLength * parts.Count];
        for (var i = 0; i < parts.Count; i++)
        {
            if (!parts[i]._shape.AsSpan().SequenceEqual(partShape))
            {
                throw new ArgumentException($"parts[{i}] has shape {Check.Shape(parts[i]._shape)}, parts[0] has {Check.Shape(partShape)}; stacked tensors must share one shape", nameof(parts));
            }
            parts[i].Values.Span.CopyTo(values.AsSpan(i * partLength));
        }
        return new CalibrationTensor(values, [parts.Count, .. partShape]);
    }

    /// <summary>The shape, e.g. <c>[8,128,128]</c>.</summary>
    public override string ToString() => Check.Shape(_shape);
}
