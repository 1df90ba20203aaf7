using Onnx;
using OrtSparse.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.GraphRewriter;

/// <summary>A small tensor the evaluator computes: float, double, int32, int64 or bool elements, all held as doubles.</summary>
/// <param name="Type">The element type.</param>
/// <param name="Shape">The dims.</param>
/// <param name="Data">The elements in row-major order; float elements are rounded to float after every op.</param>
internal sealed record EvaluatedTensor(DataType Type, long[] Shape, double[] Data)
{
    /// <summary>The scalar of a one-element tensor.</summary>
    public double Scalar => Data.Length == 1 ? Data[0] : throw new EvaluationException($"a tensor of shape [{string.Join(", ", Shape)}] is not a scalar");

    /// <summary>The elements as integers.</summary>
    public long[] Longs => Data.Select(v => (long)v).ToArray();
}

/// <summary>Why the evaluator cannot compute a value; the message says which node or value stops it.</summary>
internal sealed class EvaluationException(string message) : Exception(message);

/// <summary>
/// Computes values of the main graph that depend only on constants and on the <em>shapes</em> of
/// some values (the graph's inputs, a site's key): the index arithmetic exporters write for causal
/// masks, position ids and rotary cos/sin tables, and the shape computations around reshapes. The
/// rewriter uses it to check what a subgraph computes instead of trusting its structure. Only the
/// ops such subgraphs use are known; anything else (or reading an input's values) stops it.
/// </summary>
internal sealed class GraphEvaluator
{
    private const long MaxElements = 1 << 22;
    private readonly Dictionary<string, NodeProto> _producers = new(StringComparer.Ordinal);
    private readonly Dictionary<string, TensorProto> _initializers;
    private readonly HashSet<string> _inputs;
    private readonly GraphTypes _types;

    public GraphEvaluator(GraphProto graph, GraphTypes types)
    {
        foreach (var node in graph.Node)
        {
            foreach (var output in node.Output.Where(o => o.Length > 0))
            {
                _producers[output] = node;
            }
        }
        _initializers = graph.Initializer.GroupBy(i => i.Name).ToDictionary(g => g.Key, g => g.Last());
        _inputs = graph.Input.Select(i => i.Name).Where(n => !_initializers.ContainsKey(n)).ToHashSet();
        _types = types;
    }

    /// <summary>Evaluates <paramref name="value"/>; <paramref name="shapes"/> gives the shapes Shape nodes read for non-constant values.</summary>
    /// <exception cref="EvaluationException">The value depends on something the evaluator cannot compute.</exception>
    public EvaluatedTensor Evaluate(string value, IReadOnlyDictionary<string, long[]> shapes) => new Run(this, shapes).Value(value);

    /// <summary>Evaluates <paramref name="value"/>, or returns null with the reason.</summary>
    public EvaluatedTensor? TryEvaluate(string value, IReadOnlyDictionary<string, long[]> shapes, out string? reason)
    {
        try
        {
            reason = null;
            return Evaluate(value, shapes);
        }
        catch (EvaluationException e)
        {
            reason = e.Message;
            return null;
        }
    }

    /// <summary>
    /// Shapes for evaluating a decoder's position arithmetic: every graph input of rank 2 (input_ids and the
    /// like) as [<paramref name="batch"/>, <paramref name="sequence"/>].
    /// </summary>
    public static Dictionary<string, long[]> SequenceShapes(GraphProto graph, long batch, long sequence)
    {
        var initializers = graph.Initializer.Select(i => i.Name).ToHashSet();
        return graph.Input
            .Where(i => !initializers.Contains(i.Name) && i.Type?.TensorType?.Shape?.Dim.Count == 2)
            .ToDictionary(i => i.Name, _ => new[] { batch, sequence });
    }

    /// <summary>True when <paramref name="value"/> is an initializer (or a Constant node's output).</summary>
    public bool IsConstant(string value) =>
        _initializers.ContainsKey(value) || (_producers.TryGetValue(value, out var node) && node.OpType == "Constant" && node.Input.Count == 0);

    /// <summary>The value of a constant, or null when <paramref name="value"/> is not constant or not of a known element type.</summary>
    public EvaluatedTensor? Constant(string value) =>
        IsConstant(value) ? TryEvaluate(value, new Dictionary<string, long[]>(), out _) : null;

    private sealed class Run(GraphEvaluator owner, IReadOnlyDictionary<string, long[]> shapes)
    {
        private readonly Dictionary<string, EvaluatedTensor> _done = new(StringComparer.Ordinal);

        public EvaluatedTensor Value(string name)
        {
            if (_done.TryGetValue(name, out var known))
            {
                return known;
            }
            EvaluatedTensor result;
            if (owner._initializers.TryGetValue(name, out var initializer))
            {
                result = FromProto(initializer);
            }
            else if (owner._inputs.Contains(name))
            {
                throw new EvaluationException($"it reads the values of graph input '{name}'");
            }
            else if (owner._producers.TryGetValue(name, out var node))
            {
                var outputs = Compute(node);
                for (var i = 0; i < node.Output.Count && i < outputs.Count; i++)
                {
                    _done[node.Output[i]] = outputs[i];
                }
                result = outputs[node.Output.IndexOf(name)];
            }
            else
            {
                throw new EvaluationException($"no node or initializer defines '{name}'");
            }
            if (result.Data.Length > MaxElements)
            {
                throw new EvaluationException($"'{name}' has more than {MaxElements} elements");
            }
            _done[name] = result;
            return result;
        }

        private long[] ShapeOf(string name)
        {
            if (shapes.TryGetValue(name, out var given))
            {
                return given;
            }
            if (owner._types.Find(name)?.Dims is { } dims && dims.All(d => d is not null))
            {
                return dims.Select(d => d!.Value).ToArray();
            }
            return Value(name).Shape;
        }

        private List<EvaluatedTensor> Compute(NodeProto node)
        {
            if (!Opsets.IsOnnxDomain(node.Domain))
            {
                throw new EvaluationException($"node '{node.Name}' is {node.Domain}.{node.OpType}, which the rewriter does not evaluate");
            }
            EvaluatedTensor In(int i) => Value(node.Input[i]);
            EvaluatedTensor? Optional(int i) => node.OptionalInput(i) is { } name ? Value(name) : null;
            return node.OpType switch
            {
                "Shape" => [Shape(node)],
                "Constant" => [ConstantOf(node)],
                "Identity" => [In(0)],
                "Cast" => [Cast(In(0), (DataType)(node.IntAttribute("to") ?? 0))],
                "Squeeze" => [Squeeze(In(0), Axes(node, 1))],
                "Unsqueeze" => [Unsqueeze(In(0), Axes(node, 1)!)],
                "Reshape" => [Reshape(In(0), In(1).Longs, node.IntAttribute("allowzero") == 1)],
                "Expand" => [Expand(In(0), In(1).Longs)],
                "Concat" => [Concat(node.Input.Select(Value).ToList(), node.IntAttribute("axis") ?? 0)],
                "Slice" => [Slice(In(0), In(1).Longs, In(2).Longs, Optional(3)?.Longs, Optional(4)?.Longs)],
                "Transpose" => [Transpose(In(0), node.Attribute("perm")?.Ints.ToArray())],
                "Range" => [Range(In(0), In(1), In(2))],
                "ConstantOfShape" => [ConstantOfShape(node, In(0).Longs)],
                "Gather" => [Gather(In(0), In(1), node.IntAttribute("axis") ?? 0)],
                "GatherND" => [GatherNd(In(0), In(1), node.IntAttribute("batch_dims") ?? 0)],
                "CumSum" => [CumSum(In(0), (long)In(1).Scalar, node.IntAttribute("exclusive") == 1, node.IntAttribute("reverse") == 1)],
                "MatMul" => [MatMul(In(0), In(1))],
                "Trilu" => [Trilu(In(0), Optional(1) is { } k ? (long)k.Scalar : 0, (node.IntAttribute("upper") ?? 1) == 1)],
                "Where" => [Broadcast(DataTypeOf(In(1)), [In(0), In(1), In(2)], v => v[0] != 0 ? v[1] : v[2])],
                "Add" => [Arithmetic(In(0), In(1), (a, b) => a + b)],
                "Sub" => [Arithmetic(In(0), In(1), (a, b) => a - b)],
                "Mul" => [Arithmetic(In(0), In(1), (a, b) => a * b)],
                "Div" => [Divide(In(0), In(1))],
                "Pow" => [Arithmetic(In(0), In(1), Math.Pow)],
                "Max" => [node.Input.Select(Value).Aggregate((a, b) => Arithmetic(a, b, Math.Max))],
                "Min" => [node.Input.Select(Value).Aggregate((a, b) => Arithmetic(a, b, Math.Min))],
                "Equal" => [Compare(In(0), In(1), (a, b) => a == b)],
                "Less" => [Compare(In(0), In(1), (a, b) => a < b)],
                "LessOrEqual" => [Compare(In(0), In(1), (a, b) => a <= b)],
                "Greater" => [Compare(In(0), In(1), (a, b) => a > b)],
                "GreaterOrEqual" => [Compare(In(0), In(1), (a, b) => a >= b)],
                "And" => [Compare(In(0), In(1), (a, b) => a != 0 && b != 0)],
                "Or" => [Compare(In(0), In(1), (a, b) => a != 0 || b != 0)],
                "Xor" => [Compare(In(0), In(1), (a, b) => (a != 0) != (b != 0))],
                "Not" => [Map(In(0), DataType.Bool, v => v == 0 ? 1 : 0)],
                "IsNaN" => [Map(In(0), DataType.Bool, v => double.IsNaN(v) ? 1 : 0)],
                "Neg" => [Map(In(0), In(0).Type, v => -v)],
                "Abs" => [Map(In(0), In(0).Type, Math.Abs)],
                "Cos" => [Map(In(0), In(0).Type, Math.Cos)],
                "Sin" => [Map(In(0), In(0).Type, Math.Sin)],
                "Exp" => [Map(In(0), In(0).Type, Math.Exp)],
                "Sqrt" => [Map(In(0), In(0).Type, Math.Sqrt)],
                "Reciprocal" => [Map(In(0), In(0).Type, v => 1 / v)],
                "Floor" => [Map(In(0), In(0).Type, Math.Floor)],
                "Ceil" => [Map(In(0), In(0).Type, Math.Ceiling)],
                "ReduceProd" or "ReduceSum" or "ReduceMax" or "ReduceMin" when Axes(node, 1) is null && (node.IntAttribute("keepdims") ?? 1) == 0 =>
                    [Reduce(node.OpType, In(0))],
                _ => throw new EvaluationException($"node '{node.Name}' is {node.OpType}, which the rewriter does not evaluate"),
            };
        }

        /// <summary>Axes from input <paramref name="index"/> (opset 13 on) or the axes attribute; null when neither is given.</summary>
        private long[]? Axes(NodeProto node, int index) =>
            node.OptionalInput(index) is { } axes ? Value(axes).Longs : node.Attribute("axes")?.Ints.ToArray();

        private EvaluatedTensor Shape(NodeProto node)
        {
            var dims = ShapeOf(node.Input[0]);
            var rank = dims.Length;
            var start = Clamp(node.IntAttribute("start") ?? 0, rank);
            var end = Clamp(node.IntAttribute("end") ?? rank, rank);
            var kept = dims.Skip((int)start).Take((int)Math.Max(0, end - start)).Select(d => (double)d).ToArray();
            return new EvaluatedTensor(DataType.Int64, [kept.Length], kept);
        }

        private static EvaluatedTensor ConstantOf(NodeProto node)
        {
            var attribute = node.Attribute.FirstOrDefault() ?? throw new EvaluationException($"Constant node '{node.Name}' has no value");
            return attribute.Name switch
            {
                "value" => FromProto(attribute.T),
                "value_float" => new EvaluatedTensor(DataType.Float, [], [attribute.F]),
                "value_floats" => new EvaluatedTensor(DataType.Float, [attribute.Floats.Count], attribute.Floats.Select(f => (double)f).ToArray()),
                "value_int" => new EvaluatedTensor(DataType.Int64, [], [attribute.I]),
                "value_ints" => new EvaluatedTensor(DataType.Int64, [attribute.Ints.Count], attribute.Ints.Select(i => (double)i).ToArray()),
                _ => throw new EvaluationException($"Constant node '{node.Name}' holds {attribute.Name}, which the rewriter does not evaluate"),
            };
        }

        private static EvaluatedTensor ConstantOfShape(NodeProto node, long[] shape)
        {
            var fill = node.Attribute("value") is { } value ? FromProto(value.T) : new EvaluatedTensor(DataType.Float, [1], [0]);
            return new EvaluatedTensor(fill.Type, shape, Enumerable.Repeat(fill.Data[0], (int)CheckedCount(shape)).ToArray());
        }
    }

    private static EvaluatedTensor FromProto(TensorProto tensor)
    {
        var type = (DataType)tensor.DataType;
        if (tensor.DataLocation == TensorProto.Types.DataLocation.External)
        {
            throw new EvaluationException($"initializer '{tensor.Name}' is stored as external data");
        }
        var count = CheckedCount(tensor.Dims.ToArray());
        double[] data = type switch
        {
            DataType.Float => OnnxTensor.ToFloats(tensor).Select(f => (double)f).ToArray(),
            DataType.Float16 => OnnxTensor.ToHalfs(tensor).Select(h => (double)h).ToArray(),
            DataType.Int32 => OnnxTensor.ToInt32s(tensor).Select(i => (double)i).ToArray(),
            DataType.Int64 => OnnxTensor.ToInt64s(tensor).Select(i => (double)i).ToArray(),
            DataType.Bool => OnnxTensor.ToBools(tensor).Select(b => b ? 1.0 : 0.0).ToArray(),
            DataType.Double when tensor.DoubleData.Count == count => tensor.DoubleData.ToArray(),
            _ => throw new EvaluationException($"initializer '{tensor.Name}' has element type {SiteFacts.ElementTypeName(type)}, which the rewriter does not evaluate"),
        };
        return new EvaluatedTensor(type, tensor.Dims.ToArray(), data);
    }

    private static long CheckedCount(long[] shape)
    {
        long count = 1;
        foreach (var d in shape)
        {
            if (d < 0)
            {
                throw new EvaluationException($"shape [{string.Join(", ", shape)}] has a negative dim");
            }
            count *= d;
            if (count > MaxElements)
            {
                throw new EvaluationException($"shape [{string.Join(", ", shape)}] has more than {MaxElements} elements");
            }
        }
        return count;
    }

    private static long Clamp(long index, long size) => Math.Clamp(index < 0 ? index + size : index, 0, size);

    private static long NormalizeAxis(long axis, int rank) =>
        axis >= -rank && axis < rank ? (axis + rank) % rank : throw new EvaluationException($"axis {axis} is out of range for rank {rank}");

    /// <summary>Rounds to the element type: float elements to float, integer ones toward zero.</summary>
    private static double Round(DataType type, double value) => type switch
    {
        DataType.Float => (float)value,
        DataType.Float16 => (double)(Half)value,
        DataType.Int32 or DataType.Int64 => double.IsFinite(value) ? Math.Truncate(value) : value,
        DataType.Bool => value != 0 ? 1 : 0,
        _ => value,
    };

    private static DataType DataTypeOf(EvaluatedTensor tensor) => tensor.Type;

    private static EvaluatedTensor Map(EvaluatedTensor x, DataType type, Func<double, double> f) =>
        new(type, x.Shape, x.Data.Select(v => Round(type, f(v))).ToArray());

    private static EvaluatedTensor Cast(EvaluatedTensor x, DataType to) =>
        to is DataType.Float or DataType.Float16 or DataType.Double or DataType.Int32 or DataType.Int64 or DataType.Bool
            ? Map(x, to, v => v)
            : throw new EvaluationException($"Cast to {SiteFacts.ElementTypeName(to)} is not evaluated");

    private static EvaluatedTensor Arithmetic(EvaluatedTensor a, EvaluatedTensor b, Func<double, double, double> f) =>
        Broadcast(a.Type, [a, b], v => f(v[0], v[1]));

    private static EvaluatedTensor Divide(EvaluatedTensor a, EvaluatedTensor b) =>
        a.Type is DataType.Int32 or DataType.Int64
            ? Broadcast(a.Type, [a, b], v => v[1] == 0 ? throw new EvaluationException("integer division by zero") : Math.Truncate(v[0] / v[1]))
            : Arithmetic(a, b, (x, y) => x / y);

    private static EvaluatedTensor Compare(EvaluatedTensor a, EvaluatedTensor b, Func<double, double, bool> f) =>
        Broadcast(DataType.Bool, [a, b], v => f(v[0], v[1]) ? 1 : 0);

    /// <summary>Numpy broadcasting of <paramref name="inputs"/>, applying <paramref name="f"/> element by element.</summary>
    private static EvaluatedTensor Broadcast(DataType type, IReadOnlyList<EvaluatedTensor> inputs, Func<double[], double> f)
    {
        var shape = BroadcastShape(inputs.Select(i => i.Shape).ToList());
        var count = CheckedCount(shape);
        var strides = inputs.Select(i => BroadcastStrides(i.Shape, shape)).ToList();
        var data = new double[count];
        var index = new long[shape.Length];
        var operands = new double[inputs.Count];
        for (long flat = 0; flat < count; flat++)
        {
            for (var k = 0; k < inputs.Count; k++)
            {
                long offset = 0;
                for (var axis = 0; axis < shape.Length; axis++)
                {
                    offset += index[axis] * strides[k][axis];
                }
                operands[k] = inputs[k].Data[offset];
            }
            data[flat] = Round(type, f(operands));
            Increment(index, shape);
        }
        return new EvaluatedTensor(type, shape, data);
    }

    private static long[] BroadcastShape(IReadOnlyList<long[]> shapes)
    {
        var rank = shapes.Max(s => s.Length);
        var result = new long[rank];
        for (var axis = 0; axis < rank; axis++)
        {
            long size = 1;
            foreach (var shape in shapes)
            {
                var d = axis - (rank - shape.Length) is var a && a >= 0 ? shape[a] : 1;
                if (d != 1)
                {
                    size = size == 1 || size == d ? d : throw new EvaluationException($"shapes {string.Join(" and ", shapes.Select(s => $"[{string.Join(", ", s)}]"))} do not broadcast");
                }
            }
            result[axis] = size;
        }
        return result;
    }

    /// <summary>Strides of <paramref name="shape"/> over <paramref name="target"/>'s axes, 0 on broadcast axes.</summary>
    private static long[] BroadcastStrides(long[] shape, long[] target)
    {
        var strides = new long[target.Length];
        long stride = 1;
        for (var axis = shape.Length - 1; axis >= 0; axis--)
        {
            strides[axis + target.Length - shape.Length] = shape[axis] == 1 ? 0 : stride;
            stride *= shape[axis];
        }
        return strides;
    }

    private static long[] Strides(long[] shape)
    {
        var strides = new long[shape.Length];
        long stride = 1;
        for (var axis = shape.Length - 1; axis >= 0; axis--)
        {
            strides[axis] = stride;
            stride *= shape[axis];
        }
        return strides;
    }

    private static void Increment(long[] index, long[] shape)
    {
        for (var axis = shape.Length - 1; axis >= 0; axis--)
        {
            if (++index[axis] < shape[axis])
            {
                return;
            }
            index[axis] = 0;
        }
    }

    private static EvaluatedTensor Squeeze(EvaluatedTensor x, long[]? axes)
    {
        var squeezed = axes?.Select(a => NormalizeAxis(a, x.Shape.Length)).ToHashSet()
            ?? Enumerable.Range(0, x.Shape.Length).Where(a => x.Shape[a] == 1).Select(a => (long)a).ToHashSet();
        if (squeezed.Any(a => x.Shape[a] != 1))
        {
            throw new EvaluationException("Squeeze of an axis whose size is not 1");
        }
        return x with { Shape = x.Shape.Where((_, a) => !squeezed.Contains(a)).ToArray() };
    }

    private static EvaluatedTensor Unsqueeze(EvaluatedTensor x, long[] axes)
    {
        var rank = x.Shape.Length + axes.Length;
        var inserted = axes.Select(a => NormalizeAxis(a, rank)).ToHashSet();
        var shape = new List<long>();
        var source = 0;
        for (var axis = 0; axis < rank; axis++)
        {
            shape.Add(inserted.Contains(axis) ? 1 : x.Shape[source++]);
        }
        return x with { Shape = shape.ToArray() };
    }

    private static EvaluatedTensor Reshape(EvaluatedTensor x, long[] requested, bool allowZero)
    {
        var shape = requested.Select((d, i) => d == 0 && !allowZero ? (i < x.Shape.Length ? x.Shape[i] : throw new EvaluationException("Reshape copies a dim the input does not have")) : d).ToArray();
        var known = shape.Where(d => d != -1).Aggregate(1L, (a, b) => a * b);
        var inferred = shape.Count(d => d == -1);
        if (inferred > 1 || (inferred == 1 && (known == 0 || x.Data.Length % known != 0)))
        {
            throw new EvaluationException($"cannot reshape {x.Data.Length} elements to [{string.Join(", ", requested)}]");
        }
        shape = shape.Select(d => d == -1 ? x.Data.Length / known : d).ToArray();
        return CheckedCount(shape) == x.Data.Length
            ? x with { Shape = shape }
            : throw new EvaluationException($"cannot reshape [{string.Join(", ", x.Shape)}] to [{string.Join(", ", requested)}]");
    }

    private static EvaluatedTensor Expand(EvaluatedTensor x, long[] shape) => Broadcast(x.Type, [x, new EvaluatedTensor(x.Type, shape, new double[CheckedCount(shape)])], v => v[0]);

    private static EvaluatedTensor Concat(IReadOnlyList<EvaluatedTensor> parts, long axisAttribute)
    {
        var rank = parts[0].Shape.Length;
        var axis = (int)NormalizeAxis(axisAttribute, rank);
        var shape = parts[0].Shape.ToArray();
        shape[axis] = parts.Sum(p => p.Shape[axis]);
        long outer = shape.Take(axis).Aggregate(1L, (a, b) => a * b);
        var data = new List<double>();
        for (long o = 0; o < outer; o++)
        {
            foreach (var part in parts)
            {
                var block = (int)part.Shape.Skip(axis).Aggregate(1L, (a, b) => a * b);
                data.AddRange(new ArraySegment<double>(part.Data, (int)o * block, block));
            }
        }
        return new EvaluatedTensor(parts[0].Type, shape, data.ToArray());
    }

    private static EvaluatedTensor Slice(EvaluatedTensor x, long[] starts, long[] ends, long[]? axes, long[]? steps)
    {
        var rank = x.Shape.Length;
        axes ??= Enumerable.Range(0, starts.Length).Select(a => (long)a).ToArray();
        var begin = new long[rank];
        var step = Enumerable.Repeat(1L, rank).ToArray();
        var shape = x.Shape.ToArray();
        for (var k = 0; k < axes.Length; k++)
        {
            var axis = (int)NormalizeAxis(axes[k], rank);
            var size = x.Shape[axis];
            var s = steps?[k] ?? 1;
            if (s <= 0)
            {
                throw new EvaluationException("Slice with a step below 1 is not evaluated");
            }
            var start = Clamp(starts[k], size);
            var end = Clamp(ends[k], size);
            begin[axis] = start;
            step[axis] = s;
            shape[axis] = Math.Max(0, (end - start + s - 1) / s);
        }
        var strides = Strides(x.Shape);
        var count = CheckedCount(shape);
        var data = new double[count];
        var index = new long[rank];
        for (long flat = 0; flat < count; flat++)
        {
            long offset = 0;
            for (var axis = 0; axis < rank; axis++)
            {
                offset += (begin[axis] + index[axis] * step[axis]) * strides[axis];
            }
            data[flat] = x.Data[offset];
            Increment(index, shape);
        }
        return new EvaluatedTensor(x.Type, shape, data);
    }

    private static EvaluatedTensor Transpose(EvaluatedTensor x, long[]? perm)
    {
        var rank = x.Shape.Length;
        perm ??= Enumerable.Range(0, rank).Reverse().Select(a => (long)a).ToArray();
        var shape = perm.Select(p => x.Shape[p]).ToArray();
        var strides = Strides(x.Shape);
        var data = new double[x.Data.Length];
        var index = new long[rank];
        for (long flat = 0; flat < data.Length; flat++)
        {
            long offset = 0;
            for (var axis = 0; axis < rank; axis++)
            {
                offset += index[axis] * strides[perm[axis]];
            }
            data[flat] = x.Data[offset];
            Increment(index, shape);
        }
        return new EvaluatedTensor(x.Type, shape, data);
    }

    private static EvaluatedTensor Range(EvaluatedTensor start, EvaluatedTensor limit, EvaluatedTensor delta)
    {
        var (first, end, step) = (start.Scalar, limit.Scalar, delta.Scalar);
        if (step == 0)
        {
            throw new EvaluationException("Range with delta 0");
        }
        var count = (long)Math.Max(0, Math.Ceiling((end - first) / step));
        CheckedCount([count]);
        return new EvaluatedTensor(start.Type, [count], Enumerable.Range(0, (int)count).Select(i => Round(start.Type, first + i * step)).ToArray());
    }

    private static EvaluatedTensor Gather(EvaluatedTensor data, EvaluatedTensor indices, long axisAttribute)
    {
        var axis = (int)NormalizeAxis(axisAttribute, data.Shape.Length);
        var outer = data.Shape.Take(axis).Aggregate(1L, (a, b) => a * b);
        var inner = data.Shape.Skip(axis + 1).Aggregate(1L, (a, b) => a * b);
        var size = data.Shape[axis];
        var shape = data.Shape.Take(axis).Concat(indices.Shape).Concat(data.Shape.Skip(axis + 1)).ToArray();
        var result = new List<double>();
        for (long o = 0; o < outer; o++)
        {
            foreach (var raw in indices.Data)
            {
                var i = (long)raw < 0 ? (long)raw + size : (long)raw;
                if (i < 0 || i >= size)
                {
                    throw new EvaluationException($"Gather index {raw} is out of range [0, {size})");
                }
                result.AddRange(new ArraySegment<double>(data.Data, (int)((o * size + i) * inner), (int)inner));
            }
        }
        return new EvaluatedTensor(data.Type, shape, result.ToArray());
    }

    private static EvaluatedTensor GatherNd(EvaluatedTensor data, EvaluatedTensor indices, long batchDims)
    {
        if (batchDims != 0)
        {
            throw new EvaluationException("GatherND with batch_dims is not evaluated");
        }
        var depth = (int)indices.Shape[^1];
        var strides = Strides(data.Shape);
        var inner = data.Shape.Skip(depth).Aggregate(1L, (a, b) => a * b);
        var rows = indices.Data.Length / Math.Max(depth, 1);
        var result = new List<double>();
        for (var r = 0; r < rows; r++)
        {
            long offset = 0;
            for (var k = 0; k < depth; k++)
            {
                var i = (long)indices.Data[r * depth + k];
                i = i < 0 ? i + data.Shape[k] : i;
                if (i < 0 || i >= data.Shape[k])
                {
                    throw new EvaluationException($"GatherND index {i} is out of range [0, {data.Shape[k]})");
                }
                offset += i * strides[k];
            }
            result.AddRange(new ArraySegment<double>(data.Data, (int)offset, (int)inner));
        }
        return new EvaluatedTensor(data.Type, indices.Shape.SkipLast(1).Concat(data.Shape.Skip(depth)).ToArray(), result.ToArray());
    }

    private static EvaluatedTensor CumSum(EvaluatedTensor x, long axisValue, bool exclusive, bool reverse)
    {
        var axis = (int)NormalizeAxis(axisValue, x.Shape.Length);
        var strides = Strides(x.Shape);
        var data = new double[x.Data.Length];
        var size = x.Shape[axis];
        for (long flat = 0; flat < x.Data.Length; flat++)
        {
            var position = flat / strides[axis] % size;
            if (position != (reverse ? size - 1 : 0))
            {
                continue; // each line is summed once, from its first element
            }
            double sum = 0;
            for (long k = 0; k < size; k++)
            {
                var at = reverse ? size - 1 - k : k;
                var offset = flat + (at - position) * strides[axis];
                if (exclusive)
                {
                    data[offset] = Round(x.Type, sum);
                    sum += x.Data[offset];
                }
                else
                {
                    sum += x.Data[offset];
                    data[offset] = Round(x.Type, sum);
                }
            }
        }
        return new EvaluatedTensor(x.Type, x.Shape, data);
    }

    private static EvaluatedTensor MatMul(EvaluatedTensor a, EvaluatedTensor b)
    {
        if (a.Shape.Length < 2 || b.Shape.Length < 2)
        {
            throw new EvaluationException("MatMul of vectors is not evaluated");
        }
        var (m, k, n) = (a.Shape[^2], a.Shape[^1], b.Shape[^1]);
        if (b.Shape[^2] != k)
        {
            throw new EvaluationException($"MatMul of [{string.Join(", ", a.Shape)}] and [{string.Join(", ", b.Shape)}]");
        }
        var batch = BroadcastShape([a.Shape[..^2], b.Shape[..^2]]);
        var aStrides = BroadcastStrides(a.Shape[..^2], batch);
        var bStrides = BroadcastStrides(b.Shape[..^2], batch);
        var batches = CheckedCount(batch);
        var data = new double[CheckedCount([batches, m, n])];
        var index = new long[batch.Length];
        for (long t = 0; t < batches; t++)
        {
            long aBase = 0, bBase = 0;
            for (var axis = 0; axis < batch.Length; axis++)
            {
                aBase += index[axis] * aStrides[axis];
                bBase += index[axis] * bStrides[axis];
            }
            for (long i = 0; i < m; i++)
            {
                for (long j = 0; j < n; j++)
                {
                    double sum = 0;
                    for (long p = 0; p < k; p++)
                    {
                        sum += a.Data[(aBase * m + i) * k + p] * b.Data[(bBase * k + p) * n + j];
                    }
                    data[(t * m + i) * n + j] = Round(a.Type, sum);
                }
            }
            Increment(index, batch);
        }
        return new EvaluatedTensor(a.Type, [.. batch, m, n], data);
    }

    private static EvaluatedTensor Trilu(EvaluatedTensor x, long k, bool upper)
    {
        var (rows, columns) = (x.Shape[^2], x.Shape[^1]);
        var data = x.Data.Select((v, flat) =>
        {
            var (i, j) = (flat / columns % rows, flat % columns);
            return (upper ? j - i >= k : j - i <= k) ? v : 0;
        }).ToArray();
        return x with { Data = data };
    }

    private static EvaluatedTensor Reduce(string op, EvaluatedTensor x)
    {
        var value = op switch
        {
            "ReduceProd" => x.Data.Aggregate(1.0, (a, b) => a * b),
            "ReduceSum" => x.Data.Sum(),
            "ReduceMax" => x.Data.Max(),
            _ => x.Data.Min(),
        };
        return new EvaluatedTensor(x.Type, [], [Round(x.Type, value)]);
    }
}
