using System.Numerics.Tensors;

namespace OrtSparse.Calibration;

/// <summary>
/// The matrix products of a small dense network, row-major. Work is split by output rows and every
/// output element is summed in a fixed order by one thread, so results do not depend on the thread count.
/// </summary>
internal static class DenseMath
{
    // Rows per task. The products are bound by reading the weights, so a task walks the weights once for
    // a block of rows, each weight row serving the whole block from L1, instead of once per row.
    private const int RowBlock = 4;
    private const int TransposedBlock = 8;

    /// <summary>output[r, :] = bias + Σ_k input[r, k] · weights[k, :] for r in [0, rows).</summary>
    public static void Affine(ReadOnlyMemory<float> input, int rows, ReadOnlyMemory<float> weights, ReadOnlyMemory<float> bias,
        Memory<float> output, ParallelOptions parallel)
    {
        var outputs = bias.Length;
        var inputs = weights.Length / outputs;
        Parallel.For(0, (rows + RowBlock - 1) / RowBlock, parallel, block =>
        {
            var first = block * RowBlock;
            var end = Math.Min(first + RowBlock, rows);
            var x = input.Span;
            var y = output.Span;
            for (var r = first; r < end; r++)
            {
                bias.Span.CopyTo(y.Slice(r * outputs, outputs));
            }
            for (var k = 0; k < inputs; k++)
            {
                var w = weights.Span.Slice(k * outputs, outputs);
                for (var r = first; r < end; r++)
                {
                    var xrk = x[r * inputs + k];
                    // ReLU outputs are often zero: skipping them is exact and saves a pass over a weight row.
                    if (xrk != 0)
                    {
                        var yRow = y.Slice(r * outputs, outputs);
                        TensorPrimitives.MultiplyAdd(w, xrk, yRow, yRow);
                    }
                }
            }
        });
    }

    /// <summary>output[k, :] = Σ_r a[r, k] · b[r, :] for r in [0, rows): the weight gradient aᵀ·b.</summary>
    public static void TransposedProduct(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, int rows, Memory<float> output, ParallelOptions parallel)
    {
        var columnsA = a.Length / rows;
        var columnsB = output.Length / columnsA;
        var blocks = (columnsA + TransposedBlock - 1) / TransposedBlock;
        Parallel.For(0, blocks, parallel, block =>
        {
            var first = block * TransposedBlock;
            var end = Math.Min(first + TransposedBlock, columnsA);
            var y = output.Span;
            y.Slice(first * columnsB, (end - first) * columnsB).Clear();
            for (var r = 0; r < rows; r++)
            {
                var aRow = a.Span.Slice(r * columnsA, columnsA);
                var bRow = b.Span.Slice(r * columnsB, columnsB);
                for (var k = first; k < end; k++)
                {
                    if (aRow[k] != 0)
                    {
                        var yRow = y.Slice(k * columnsB, columnsB);
                        TensorPrimitives.MultiplyAdd(bRow, aRow[k], yRow, yRow);
                    }
                }
            }
        });
    }

    /// <summary>output[r, k] = a[r, :] · b[k, :] for r in [0, rows): the back-propagation a·bᵀ.</summary>
    public static void ProductWithTransposed(ReadOnlyMemory<float> a, int rows, ReadOnlyMemory<float> b, Memory<float> output, ParallelOptions parallel)
    {
        var inner = a.Length / rows;
        var columns = b.Length / inner;
        Parallel.For(0, (rows + RowBlock - 1) / RowBlock, parallel, block =>
        {
            var first = block * RowBlock;
            var end = Math.Min(first + RowBlock, rows);
            var y = output.Span;
            for (var k = 0; k < columns; k++)
            {
                var bRow = b.Span.Slice(k * inner, inner);
                for (var r = first; r < end; r++)
                {
                    y[r * columns + k] = TensorPrimitives.Dot(a.Span.Slice(r * inner, inner), bRow);
                }
            }
        });
    }

    /// <summary>output[:] = Σ_r m[r, :] for r in [0, rows): a bias gradient.</summary>
    public static void ColumnSums(ReadOnlySpan<float> m, int rows, Span<float> output)
    {
        output.Clear();
        for (var r = 0; r < rows; r++)
        {
            TensorPrimitives.Add(output, m.Slice(r * output.Length, output.Length), output);
        }
    }
}
