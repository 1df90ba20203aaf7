namespace OrtSparse.Calibration;

/// <summary>Argument checks shared by the calibration entry points; messages name the argument and the values.</summary>
internal static class Check
{
    /// <summary>
    /// The number of rows of a row-major matrix with <paramref name="columns"/> columns held in
    /// <paramref name="values"/>; throws unless the length is a whole number of rows.
    /// </summary>
    public static int Rows<T>(ReadOnlySpan<T> values, int columns, string valuesName, string columnsName)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(columns, columnsName);
        if (values.Length % columns != 0)
        {
            throw new ArgumentException($"{valuesName} has {values.Length} elements, not a whole number of rows of {columnsName} = {columns}", valuesName);
        }
        return values.Length / columns;
    }

    /// <summary>Throws unless every value is finite, naming the first offending element as [row, column].</summary>
    public static void Finite(ReadOnlySpan<float> values, int columns, string valuesName)
    {
        // A NaN or infinity makes the sum non-finite, so one vectorised pass clears the common case;
        // the scalar search runs only to name the culprit (or after a harmless overflow of the sum).
        if (float.IsFinite(System.Numerics.Tensors.TensorPrimitives.Sum(values)))
        {
            return;
        }
        for (var i = 0; i < values.Length; i++)
        {
            if (!float.IsFinite(values[i]))
            {
                throw new ArgumentException($"{valuesName}[{i / columns}, {i % columns}] is {values[i]}; calibration data must be finite", valuesName);
            }
        }
    }

    /// <summary>The shape formatted as ONNX tools print it, e.g. [8,128,128].</summary>
    public static string Shape<T>(IEnumerable<T> shape) => $"[{string.Join(",", shape)}]";
}
