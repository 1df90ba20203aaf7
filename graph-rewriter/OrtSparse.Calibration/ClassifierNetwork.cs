using System.Numerics.Tensors;

namespace OrtSparse.Calibration;

/// <summary>
/// The classifier during training: <c>z = W2ᵀ·relu(W1ᵀ·x + b1) + b2</c> on standardised inputs, trained
/// with Adam on mini-batches to minimise the cross-entropy between softmax(z) and soft targets.
/// Parameters live in one array so that the Adam step is one pass over it.
/// </summary>
internal sealed class ClassifierNetwork
{
    private const float Beta1 = 0.9f;
    private const float Beta2 = 0.999f;
    private const float Epsilon = 1e-8f;

    private readonly int _inputs;
    private readonly int _hidden;
    private readonly int _clusters;
    private readonly float[] _parameters;
    private readonly float[] _gradient;
    private readonly float[] _firstMoment;
    private readonly float[] _secondMoment;
    private readonly float[] _activations;
    private readonly float[] _logits;
    private readonly float[] _hiddenGradient;
    private readonly ParallelOptions _parallel;
    private int _steps;

    /// <summary>
    /// He-initialised weights (normal, variance 2/fan-in for the ReLU layer, 1/fan-in for the output),
    /// zero hidden biases, and output biases at the log of <paramref name="clusterPrior"/>, so that training
    /// starts from the clusters' average mass instead of a uniform guess.
    /// </summary>
    public ClassifierNetwork(int inputs, int hidden, ReadOnlySpan<float> clusterPrior, int maxBatch, GaussianSampler normal, ParallelOptions parallel)
    {
        _inputs = inputs;
        _hidden = hidden;
        _clusters = clusterPrior.Length;
        _parallel = parallel;
        _parameters = new float[inputs * hidden + hidden + hidden * _clusters + _clusters];
        _gradient = new float[_parameters.Length];
        _firstMoment = new float[_parameters.Length];
        _secondMoment = new float[_parameters.Length];
        _activations = new float[maxBatch * hidden];
        _logits = new float[maxBatch * _clusters];
        _hiddenGradient = new float[maxBatch * hidden];

        Fill(W1(_parameters).Span, normal, Math.Sqrt(2.0 / inputs));
        Fill(W2(_parameters).Span, normal, Math.Sqrt(1.0 / hidden));
        var b2 = B2(_parameters).Span;
        for (var c = 0; c < _clusters; c++)
        {
            b2[c] = MathF.Log(clusterPrior[c] + 1e-6f);
        }
    }

    // The parts of the packed parameter array, or of the gradient laid out like it.
    private Memory<float> W1(float[] packed) => packed.AsMemory(0, _inputs * _hidden);
    private Memory<float> B1(float[] packed) => packed.AsMemory(_inputs * _hidden, _hidden);
    private Memory<float> W2(float[] packed) => packed.AsMemory(_inputs * _hidden + _hidden, _hidden * _clusters);
    private Memory<float> B2(float[] packed) => packed.AsMemory(packed.Length - _clusters, _clusters);

    /// <summary>One Adam step on a batch; returns the batch's summed KL divergence from the targets to the prediction.</summary>
    /// <param name="x">[rows, D] standardised queries (at least rows of them).</param>
    /// <param name="targets">[rows, C] target distributions.</param>
    /// <param name="rows">The batch size.</param>
    /// <param name="learningRate">Adam's step size.</param>
    public double TrainBatch(float[] x, float[] targets, int rows, float learningRate)
    {
        var input = x.AsMemory(0, rows * _inputs);
        Forward(input, rows);
        var logitGradient = _logits.AsMemory(0, rows * _clusters);
        var loss = 0.0;
        for (var r = 0; r < rows; r++)
        {
            var z = logitGradient.Span.Slice(r * _clusters, _clusters);
            var t = targets.AsSpan(r * _clusters, _clusters);
            loss += LogSoftmaxInPlace(z, t);
            // ∂ cross-entropy / ∂z = softmax(z) − t, averaged over the batch.
            TensorPrimitives.Exp(z, z);
            TensorPrimitives.Subtract(z, t, z);
            TensorPrimitives.Divide(z, rows, z);
        }

        var activations = _activations.AsMemory(0, rows * _hidden);
        var hiddenGradient = _hiddenGradient.AsMemory(0, rows * _hidden);
        DenseMath.TransposedProduct(activations, logitGradient, rows, W2(_gradient), _parallel);
        DenseMath.ColumnSums(logitGradient.Span, rows, B2(_gradient).Span);
        DenseMath.ProductWithTransposed(logitGradient, rows, W2(_parameters), hiddenGradient, _parallel);
        var mask = activations.Span;
        var g = hiddenGradient.Span;
        for (var i = 0; i < g.Length; i++)
        {
            g[i] = mask[i] > 0 ? g[i] : 0;   // ReLU passes gradient only where it was active
        }
        DenseMath.TransposedProduct(input, hiddenGradient, rows, W1(_gradient), _parallel);
        DenseMath.ColumnSums(g, rows, B1(_gradient).Span);
        AdamStep(learningRate);
        return loss;
    }

    /// <summary>The summed KL divergence of a set and the target mass its top clusters capture, in batches.</summary>
    public (double Loss, double CapturedMass) Evaluate(float[] x, float[] targets, int rows, int topClusters)
    {
        var batch = _activations.Length / _hidden;
        var loss = 0.0;
        var captured = 0.0;
        for (var first = 0; first < rows; first += batch)
        {
            var count = Math.Min(batch, rows - first);
            Forward(x.AsMemory(first * _inputs, count * _inputs), count);
            for (var r = 0; r < count; r++)
            {
                var z = _logits.AsSpan(r * _clusters, _clusters);
                var t = targets.AsSpan((first + r) * _clusters, _clusters);
                captured += Ranking.CapturedMass(z, t, topClusters);
                loss += LogSoftmaxInPlace(z, t);
            }
        }
        return (loss, captured);
    }

    /// <summary>
    /// The trained weights in the op's layout for raw queries: the standardisation
    /// <c>x = (q − mean) / scale</c> is folded into the first layer.
    /// </summary>
    public ClusterClassifierModel ToModel(ReadOnlySpan<double> mean, ReadOnlySpan<double> scale)
    {
        var w1 = W1(_parameters).Span;
        var b1 = B1(_parameters).Span;
        var rawW1 = new float[w1.Length];
        var rawB1 = new float[_hidden];
        for (var m = 0; m < _hidden; m++)
        {
            var shift = (double)b1[m];
            for (var d = 0; d < _inputs; d++)
            {
                var weight = w1[d * _hidden + m] / scale[d];
                rawW1[d * _hidden + m] = (float)weight;
                shift -= weight * mean[d];
            }
            rawB1[m] = (float)shift;
        }
        float[] w2 = [.. W2(_parameters).Span, .. B2(_parameters).Span];
        return new ClusterClassifierModel(new CalibrationTensor(rawW1, _inputs, _hidden), new CalibrationTensor(rawB1, _hidden),
            new CalibrationTensor(w2, _hidden + 1, _clusters));
    }

    /// <summary>Leaves the ReLU activations in _activations and the logits in _logits.</summary>
    /// <param name="x">[rows, D] standardised queries.</param>
    /// <param name="rows">The batch size.</param>
    private void Forward(ReadOnlyMemory<float> x, int rows)
    {
        var activations = _activations.AsMemory(0, rows * _hidden);
        DenseMath.Affine(x, rows, W1(_parameters), B1(_parameters), activations, _parallel);
        TensorPrimitives.Max(activations.Span, 0f, activations.Span);
        DenseMath.Affine(activations, rows, W2(_parameters), B2(_parameters), _logits.AsMemory(0, rows * _clusters), _parallel);
    }

    /// <summary>Turns logits into log-probabilities in place and returns KL(t ‖ softmax).</summary>
    private static double LogSoftmaxInPlace(Span<float> z, ReadOnlySpan<float> t)
    {
        TensorPrimitives.Subtract(z, TensorPrimitives.Max(z), z);
        var logSum = Math.Log(SumOfExp(z));
        TensorPrimitives.Subtract(z, (float)logSum, z);
        var kl = 0.0;
        for (var c = 0; c < z.Length; c++)
        {
            if (t[c] > 0)
            {
                kl += t[c] * (Math.Log(t[c]) - z[c]);
            }
        }
        return kl;
    }

    private static double SumOfExp(ReadOnlySpan<float> z)
    {
        var sum = 0.0;
        foreach (var v in z)
        {
            sum += Math.Exp(v);
        }
        return sum;
    }

    private void AdamStep(float learningRate)
    {
        _steps++;
        // Bias-corrected step size: the moments start at zero and are scaled back up early on.
        var stepSize = (float)(learningRate * Math.Sqrt(1 - Math.Pow(Beta2, _steps)) / (1 - Math.Pow(Beta1, _steps)));
        for (var i = 0; i < _parameters.Length; i++)
        {
            var g = _gradient[i];
            _firstMoment[i] = Beta1 * _firstMoment[i] + (1 - Beta1) * g;
            _secondMoment[i] = Beta2 * _secondMoment[i] + (1 - Beta2) * g * g;
            _parameters[i] -= stepSize * _firstMoment[i] / (MathF.Sqrt(_secondMoment[i]) + Epsilon);
        }
    }

    private static void Fill(Span<float> weights, GaussianSampler normal, double standardDeviation)
    {
        for (var i = 0; i < weights.Length; i++)
        {
            weights[i] = (float)(normal.Next() * standardDeviation);
        }
    }
}
