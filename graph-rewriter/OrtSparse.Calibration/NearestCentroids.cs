using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace OrtSparse.Calibration;

/// <summary>
/// Finds, for many rows, the centroid of largest dot product, as a blocked matrix product: the
/// centroids are stored transposed ([D, C] padded to whole vectors), and a micro-kernel multiplies
/// four rows by two vectors of centroids at a time, broadcasting row elements, so that every centroid
/// load serves four rows and no horizontal sums are needed. Each (row, centroid) score is always
/// accumulated in the same order, so results do not depend on tiling or thread count.
/// </summary>
internal sealed class NearestCentroids
{
    private const int TileRows = 64;
    private const int KernelRows = 4;
    private static readonly int Lanes = Vector<float>.Count;
    // Centroids per kernel call, and per block kept hot in L1 while a tile of rows streams past it.
    private static readonly int KernelWidth = 2 * Lanes;
    private static readonly int BlockWidth = 4 * KernelWidth;

    private readonly float[] _transposed;
    private readonly int _count;
    private readonly int _stride;
    private readonly int _dimension;

    /// <param name="centroids">[C, D] row-major.</param>
    /// <param name="dimension">D.</param>
    public NearestCentroids(ReadOnlySpan<float> centroids, int dimension)
    {
        _dimension = dimension;
        _count = centroids.Length / dimension;
        _stride = (_count + KernelWidth - 1) / KernelWidth * KernelWidth;
        _transposed = new float[dimension * _stride];
        for (var c = 0; c < _count; c++)
        {
            for (var d = 0; d < dimension; d++)
            {
                _transposed[d * _stride + c] = centroids[c * dimension + d];
            }
        }
    }

    /// <summary>Writes each row's nearest centroid (the lower index on ties) and its dot product with it.</summary>
    /// <param name="rows">[N, D] row-major.</param>
    /// <param name="nearest">N centroid indices.</param>
    /// <param name="score">N dot products.</param>
    /// <param name="parallel">Thread count and cancellation.</param>
    public void Find(float[] rows, int[] nearest, float[] score, ParallelOptions parallel)
    {
        var rowCount = rows.Length / _dimension;
        var tiles = (rowCount + TileRows - 1) / TileRows;
        Parallel.For(0, tiles, parallel, tile =>
        {
            var first = tile * TileRows;
            FindTile(rows, first, Math.Min(TileRows, rowCount - first), nearest, score);
        });
    }

    private void FindTile(float[] rows, int first, int count, int[] nearest, float[] score)
    {
        Span<float> best = stackalloc float[TileRows];
        Span<int> bestIndex = stackalloc int[TileRows];
        best.Fill(float.NegativeInfinity);
        bestIndex.Clear();
        var centroidVectors = MemoryMarshal.Cast<float, Vector<float>>(_transposed.AsSpan());
        for (var blockStart = 0; blockStart < _stride; blockStart += BlockWidth)
        {
            var blockEnd = Math.Min(blockStart + BlockWidth, _stride);
            var r = 0;
            for (; r + KernelRows <= count; r += KernelRows)
            {
                var x = rows.AsSpan((first + r) * _dimension, KernelRows * _dimension);
                for (var c = blockStart; c < blockEnd; c += KernelWidth)
                {
                    FourRows(x, centroidVectors, c, best.Slice(r, KernelRows), bestIndex.Slice(r, KernelRows));
                }
            }
            for (; r < count; r++)
            {
                var x = rows.AsSpan((first + r) * _dimension, _dimension);
                for (var c = blockStart; c < blockEnd; c += KernelWidth)
                {
                    OneRow(x, centroidVectors, c, ref best[r], ref bestIndex[r]);
                }
            }
        }
        best[..count].CopyTo(score.AsSpan(first, count));
        bestIndex[..count].CopyTo(nearest.AsSpan(first, count));
    }

    /// <summary>Scores four consecutive rows against centroids [c, c + 2·Lanes).</summary>
    private void FourRows(ReadOnlySpan<float> x, ReadOnlySpan<Vector<float>> centroids, int c, Span<float> best, Span<int> bestIndex)
    {
        var n = _dimension;
        Vector<float> a0 = default, b0 = default, a1 = default, b1 = default;
        Vector<float> a2 = default, b2 = default, a3 = default, b3 = default;
        var vectorsPerRow = _stride / Lanes;
        // The spans were sliced to exactly four rows and the padded centroid table, so the references
        // below stay in range; going through them drops a bounds check per load in the hottest loop.
        ref readonly var row0 = ref MemoryMarshal.GetReference(x);
        ref readonly var column = ref Unsafe.Add(ref MemoryMarshal.GetReference(centroids), c / Lanes);
        for (var d = 0; d < n; d++)
        {
            ref readonly var centroidPair = ref Unsafe.Add(ref Unsafe.AsRef(in column), d * vectorsPerRow);
            var low = centroidPair;
            var high = Unsafe.Add(ref Unsafe.AsRef(in centroidPair), 1);
            var x0 = new Vector<float>(Unsafe.Add(ref Unsafe.AsRef(in row0), d));
            var x1 = new Vector<float>(Unsafe.Add(ref Unsafe.AsRef(in row0), n + d));
            var x2 = new Vector<float>(Unsafe.Add(ref Unsafe.AsRef(in row0), 2 * n + d));
            var x3 = new Vector<float>(Unsafe.Add(ref Unsafe.AsRef(in row0), 3 * n + d));
            a0 = Vector.FusedMultiplyAdd(x0, low, a0);
            b0 = Vector.FusedMultiplyAdd(x0, high, b0);
            a1 = Vector.FusedMultiplyAdd(x1, low, a1);
            b1 = Vector.FusedMultiplyAdd(x1, high, b1);
            a2 = Vector.FusedMultiplyAdd(x2, low, a2);
            b2 = Vector.FusedMultiplyAdd(x2, high, b2);
            a3 = Vector.FusedMultiplyAdd(x3, low, a3);
            b3 = Vector.FusedMultiplyAdd(x3, high, b3);
        }
        Keep(a0, b0, c, ref best[0], ref bestIndex[0]);
        Keep(a1, b1, c, ref best[1], ref bestIndex[1]);
        Keep(a2, b2, c, ref best[2], ref bestIndex[2]);
        Keep(a3, b3, c, ref best[3], ref bestIndex[3]);
    }

    /// <summary>The same computation as <see cref="FourRows"/> for one row, in the same order.</summary>
    private void OneRow(ReadOnlySpan<float> x, ReadOnlySpan<Vector<float>> centroids, int c, ref float best, ref int bestIndex)
    {
        Vector<float> a = default, b = default;
        var vectorsPerRow = _stride / Lanes;
        var column = c / Lanes;
        for (var d = 0; d < _dimension; d++)
        {
            var xd = new Vector<float>(x[d]);
            a = Vector.FusedMultiplyAdd(xd, centroids[d * vectorsPerRow + column], a);
            b = Vector.FusedMultiplyAdd(xd, centroids[d * vectorsPerRow + column + 1], b);
        }
        Keep(a, b, c, ref best, ref bestIndex);
    }

    /// <summary>Takes a score of centroids [c, c + 2·Lanes) that beats the best so far; scanning upwards with a strict comparison keeps the lower index on ties.</summary>
    private void Keep(Vector<float> low, Vector<float> high, int c, ref float best, ref int bestIndex)
    {
        var threshold = new Vector<float>(best);
        if (!Vector.GreaterThanAny(low, threshold) && !Vector.GreaterThanAny(high, threshold))
        {
            return;
        }
        var end = Math.Min(KernelWidth, _count - c);
        for (var k = 0; k < end; k++)
        {
            var value = k < Lanes ? low[k] : high[k - Lanes];
            if (value > best)
            {
                best = value;
                bestIndex = c + k;
            }
        }
    }
}
