using System.Numerics.Tensors;

namespace OrtSparse.Calibration;

/// <summary>
/// Accumulates the second-moment matrix <c>Σ k kᵀ</c> of rows added in any number of pieces, in
/// double precision, so that keys can be streamed from many calibration prompts without being kept.
/// Not thread-safe: add from one thread at a time (each <see cref="Add"/> already uses every core).
/// </summary>
public sealed class SecondMomentAccumulator
{
    // Rows are converted to double and transposed a block at a time, so that every entry of the
    // matrix is one vectorised dot product per block, computed by a single thread: the result does
    // not depend on the thread count.
    private const int BlockRows = 256;

    private readonly double[] _sum;
    private readonly double[] _columns;

    /// <summary>Starts an empty accumulator for rows of <paramref name="dimension"/> values.</summary>
    /// <param name="dimension">The row length D, at least 1.</param>
    public SecondMomentAccumulator(int dimension)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dimension);
        Dimension = dimension;
        _sum = new double[dimension * dimension];
        _columns = new double[dimension * BlockRows];
    }

    /// <summary>The row length D.</summary>
    public int Dimension { get; }

    /// <summary>The number of rows added so far.</summary>
    public long Count { get; private set; }

    /// <summary>Adds the rows of a row-major matrix.</summary>
    /// <param name="rows">[N, D] finite values; N may be 0.</param>
    public void Add(ReadOnlySpan<float> rows)
    {
        var rowCount = Check.Rows(rows, Dimension, nameof(rows), nameof(Dimension));
        Check.Finite(rows, Dimension, nameof(rows));
        for (var start = 0; start < rowCount; start += BlockRows)
        {
            var blockRows = Math.Min(BlockRows, rowCount - start);
            LoadTransposed(rows.Slice(start * Dimension, blockRows * Dimension), blockRows);
            AddBlock(blockRows);
        }
        Count += rowCount;
    }

    /// <summary>The mean of <c>k kᵀ</c> over the rows added, D × D row-major (full, symmetric).</summary>
    /// <exception cref="InvalidOperationException">No rows were added.</exception>
    public double[] Mean()
    {
        if (Count == 0)
        {
            throw new InvalidOperationException("no rows were added, so there is no second moment");
        }
        var dimension = Dimension;
        var mean = new double[dimension * dimension];
        for (var i = 0; i < dimension; i++)
        {
            for (var j = i; j < dimension; j++)
            {
                mean[i * dimension + j] = mean[j * dimension + i] = _sum[i * dimension + j] / Count;
            }
        }
        return mean;
    }

    private void LoadTransposed(ReadOnlySpan<float> block, int blockRows)
    {
        for (var r = 0; r < blockRows; r++)
        {
            var row = block.Slice(r * Dimension, Dimension);
            for (var d = 0; d < Dimension; d++)
            {
                _columns[d * BlockRows + r] = row[d];
            }
        }
    }

    /// <summary>Adds the block's products to the upper triangle of the sum.</summary>
    private void AddBlock(int blockRows)
    {
        var dimension = Dimension;
        Parallel.For(0, dimension, i =>
        {
            var columnI = new ReadOnlySpan<double>(_columns, i * BlockRows, blockRows);
            for (var j = i; j < dimension; j++)
            {
                _sum[i * dimension + j] += TensorPrimitives.Dot(columnI, new ReadOnlySpan<double>(_columns, j * BlockRows, blockRows));
            }
        });
    }
}
