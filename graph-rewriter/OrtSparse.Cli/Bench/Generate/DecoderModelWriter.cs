using System.Text.Json;
using System.Text.Json.Nodes;
using Onnx;
using OrtSparse.Onnx;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Cli.Bench.Generate;

/// <summary>
/// Writes a Llama-architecture decoder with random weights in ONNX Runtime GenAI's format: the graph
/// its model builder emits (com.microsoft.GroupQueryAttention with the rotary embedding inside, caches
/// past_key_values.N.key/value → present.N.key/value) and the genai_config.json that describes it.
/// The same folder is the baseline's model for GenAI and, patched, ours.
/// </summary>
/// <remarks>
/// Weights are uniform with the variance of N(0, σ²), σ = 1/√fan_in for the projections (activations
/// stay of order one at any width, so float16 stays finite) and 1 for the embedding; lm_head's σ makes
/// the logits' spread <see cref="LogitSpread"/>, so that greedy decoding picks clear winners that two
/// engines agree on. lm_head's column of <see cref="EndOfSequenceToken"/> is zero: its logit is 0, far
/// below the winners, so a generation does not end early.
/// </remarks>
public static class DecoderModelWriter
{
    /// <summary>The model file in the folder.</summary>
    public const string ModelFileName = "model.onnx";

    /// <summary>The external data file, written when the weights exceed <see cref="ExternalDataLimit"/>.</summary>
    public const string DataFileName = "model.onnx.data";

    /// <summary>GenAI's configuration file in the folder.</summary>
    public const string ConfigFileName = "genai_config.json";

    /// <summary>Weights beyond this many bytes go to <see cref="DataFileName"/>: protobuf cannot write a model file over 2 GiB.</summary>
    public const long ExternalDataLimit = 1536L << 20;

    /// <summary>The end-of-sequence token (eos_token_id, also pad_token_id).</summary>
    public const int EndOfSequenceToken = 0;

    /// <summary>The beginning-of-sequence token (bos_token_id); generation does not use it.</summary>
    public const int BeginningOfSequenceToken = 1;

    /// <summary>Standard deviation of the logits over the vocabulary.</summary>
    public const double LogitSpread = 4;

    /// <summary>Graph input: token ids, int64 [batch_size, sequence_length].</summary>
    public const string InputIds = "input_ids";

    /// <summary>Graph input: 1 for every token so far, int64 [batch_size, total_sequence_length].</summary>
    public const string AttentionMask = "attention_mask";

    /// <summary>Graph output: [batch_size, sequence_length, vocab].</summary>
    public const string Logits = "logits";

    /// <summary>The rotary embedding's base θ (Llama's 10000).</summary>
    public const double RotaryBase = 10000;

    private const string PastKeyFormat = "past_key_values.%d.key", PastValueFormat = "past_key_values.%d.value";
    private const string PresentKeyFormat = "present.%d.key", PresentValueFormat = "present.%d.value";
    private const float NormEpsilon = 1e-5f;

    /// <summary>Graph input past_key_values.<paramref name="layer"/>.key: [batch_size, kv heads, past_sequence_length, head size].</summary>
    public static string PastKey(int layer) => LayerName(PastKeyFormat, layer);

    /// <summary>Graph input past_key_values.<paramref name="layer"/>.value.</summary>
    public static string PastValue(int layer) => LayerName(PastValueFormat, layer);

    /// <summary>Graph output present.<paramref name="layer"/>.key: [batch_size, kv heads, total_sequence_length, head size].</summary>
    public static string PresentKey(int layer) => LayerName(PresentKeyFormat, layer);

    /// <summary>Graph output present.<paramref name="layer"/>.value.</summary>
    public static string PresentValue(int layer) => LayerName(PresentValueFormat, layer);

    /// <summary>
    /// Writes model.onnx (with model.onnx.data for large weights) and genai_config.json into
    /// <paramref name="folder"/>: into a staging folder beside it first, which replaces the folder by a
    /// rename when complete. A failed write leaves an existing folder as it was. The weights are built
    /// in memory first (<see cref="DecoderShape.WeightBytes"/>, plus one tensor while it is written).
    /// </summary>
    /// <param name="shape">The decoder; validated.</param>
    /// <param name="folder">The model folder to create or replace.</param>
    /// <param name="externalDataLimit">Weights of more bytes than this go to <see cref="DataFileName"/>.</param>
    /// <returns>The full path of the folder.</returns>
    public static string Write(DecoderShape shape, string folder, long externalDataLimit = ExternalDataLimit)
    {
        ArgumentNullException.ThrowIfNull(shape);
        ArgumentException.ThrowIfNullOrEmpty(folder);
        ArgumentOutOfRangeException.ThrowIfNegative(externalDataLimit);
        shape.Validate();
        var target = Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder));
        if (File.Exists(target))
        {
            throw new IOException($"'{target}' is a file; the model goes into a folder of that name");
        }
        var parent = Path.GetDirectoryName(target) ?? throw new ArgumentException($"'{folder}' names no folder a model can go into", nameof(folder));
        Directory.CreateDirectory(parent);
        var staging = Path.Combine(parent, $".{Path.GetFileName(target)}.staging-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            var saveOptions = shape.WeightBytes > externalDataLimit
                ? new SaveOptions { ExternalDataThreshold = 1024, ExternalDataLocation = DataFileName }
                : null;
            new OnnxModel(Build(shape)).Save(Path.Combine(staging, ModelFileName), saveOptions);
            File.WriteAllText(Path.Combine(staging, ConfigFileName), GenAiConfigJson(shape));
            ReplaceFolder(staging, target);
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
        return target;
    }

    /// <summary>The decoder graph with its weights, in memory.</summary>
    /// <param name="shape">The decoder; validated.</param>
    public static ModelProto Build(DecoderShape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        shape.Validate();
        var graph = new DecoderGraph(shape);
        graph.AddAll();
        var model = OnnxBuilder.Model(
            OnnxBuilder.Graph("ortsparse_decoder", graph.Nodes, graph.Inputs(), graph.Outputs(), graph.Initializers),
            [OnnxBuilder.Opset("", 21), OnnxBuilder.Opset("com.microsoft", 1)]);
        model.DocString = $"Llama-architecture decoder with random weights, written by ortsparse for ONNX Runtime GenAI: {shape}";
        return model;
    }

    /// <summary>genai_config.json for <paramref name="shape"/>: a llama decoder, greedy search up to the max length, shared past/present buffers.</summary>
    /// <param name="shape">The decoder; validated.</param>
    public static string GenAiConfigJson(DecoderShape shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        shape.Validate();
        var config = new JsonObject
        {
            ["model"] = new JsonObject
            {
                ["type"] = "llama",
                ["bos_token_id"] = BeginningOfSequenceToken,
                ["eos_token_id"] = EndOfSequenceToken,
                ["pad_token_id"] = EndOfSequenceToken,
                ["vocab_size"] = shape.Vocab,
                ["context_length"] = shape.MaxLength,
                ["decoder"] = new JsonObject
                {
                    ["filename"] = ModelFileName,
                    ["session_options"] = new JsonObject { ["log_id"] = "onnxruntime-genai", ["provider_options"] = new JsonArray() },
                    ["head_size"] = shape.HeadSize,
                    ["hidden_size"] = shape.Hidden,
                    ["num_attention_heads"] = shape.Heads,
                    ["num_key_value_heads"] = shape.KvHeads,
                    ["num_hidden_layers"] = shape.Layers,
                    ["inputs"] = new JsonObject
                    {
                        ["input_ids"] = InputIds,
                        ["attention_mask"] = AttentionMask,
                        ["past_key_names"] = PastKeyFormat,
                        ["past_value_names"] = PastValueFormat,
                    },
                    ["outputs"] = new JsonObject
                    {
                        ["logits"] = Logits,
                        ["present_key_names"] = PresentKeyFormat,
                        ["present_value_names"] = PresentValueFormat,
                    },
                },
            },
            ["search"] = new JsonObject
            {
                ["do_sample"] = false,
                ["num_beams"] = 1,
                ["num_return_sequences"] = 1,
                ["top_k"] = 1,
                ["top_p"] = 1.0,
                ["temperature"] = 1.0,
                ["repetition_penalty"] = 1.0,
                ["min_length"] = 0,
                ["max_length"] = shape.MaxLength,
                ["past_present_share_buffer"] = true,
            },
        };
        return config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n";
    }

    /// <summary>
    /// The cos and sin tables [positions, rotaryDim / 2] of the rotary embedding with angles
    /// p·θ^(−2i/rotaryDim), row-major: GroupQueryAttention's cos_cache and sin_cache.
    /// </summary>
    /// <param name="positions">Rows: the longest sequence.</param>
    /// <param name="rotaryDim">The rotated width of a head (even).</param>
    public static (float[] Cos, float[] Sin) RotaryTables(int positions, int rotaryDim)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(positions);
        if (rotaryDim <= 0 || rotaryDim % 2 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(rotaryDim), rotaryDim, "the rotary width must be positive and even");
        }
        var half = rotaryDim / 2;
        var cos = new float[positions * half];
        var sin = new float[positions * half];
        for (var p = 0; p < positions; p++)
        {
            for (var i = 0; i < half; i++)
            {
                var angle = p * Math.Pow(RotaryBase, -2.0 * i / rotaryDim);
                cos[p * half + i] = (float)Math.Cos(angle);
                sin[p * half + i] = (float)Math.Sin(angle);
            }
        }
        return (cos, sin);
    }

    private static string LayerName(string format, int layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        return format.Replace("%d", layer.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);
    }

    /// <summary>Moves <paramref name="staging"/> to <paramref name="target"/>; an existing target is moved aside first and deleted after.</summary>
    private static void ReplaceFolder(string staging, string target)
    {
        if (!Directory.Exists(target))
        {
            Directory.Move(staging, target);
            return;
        }
        var old = Path.Combine(Path.GetDirectoryName(target)!, $".{Path.GetFileName(target)}.old-{Guid.NewGuid():N}");
        Directory.Move(target, old);
        try
        {
            Directory.Move(staging, target);
        }
        catch
        {
            Directory.Move(old, target);
            throw;
        }
        Directory.Delete(old, recursive: true);
    }

    /// <summary>Nodes, weights and declarations of one decoder, named as GenAI's model builder names them.</summary>
    private sealed class DecoderGraph(DecoderShape shape)
    {
        private const string SeqlensK = "/model/attn_mask_reformat/seqlens_k", TotalSequenceLength = "/model/attn_mask_reformat/total_sequence_length";
        private const string CosCache = "cos_cache", SinCache = "sin_cache";
        private readonly DataType _type = shape.ElementType;
        private int _tensorIndex;

        public List<NodeProto> Nodes { get; } = [];

        public List<TensorProto> Initializers { get; } = [];

        public void AddAll()
        {
            AddMaskReformat();
            AddRotaryTables();
            var hidden = Node("Gather", "/model/embed_tokens/Gather", [Weight("model.embed_tokens.weight", 1.0, shape.Vocab, shape.Hidden), InputIds]);
            for (var layer = 0; layer < shape.Layers; layer++)
            {
                hidden = AddLayer(layer, hidden);
            }
            var normed = Norm("/model/layers.final_norm_layernorm", "model.norm.weight", hidden);
            var lmHead = Weight("lm_head.MatMul.weight", LogitSpread / Math.Sqrt(shape.Hidden), shape.Hidden, shape.Vocab, zeroColumn: EndOfSequenceToken);
            Nodes.Add(OnnxBuilder.Node("MatMul", [normed, lmHead], [Logits], name: "/lm_head/MatMul"));
        }

        public IEnumerable<ValueInfoProto> Inputs()
        {
            yield return OnnxBuilder.TensorValueInfo(InputIds, DataType.Int64, ["batch_size", "sequence_length"]);
            yield return OnnxBuilder.TensorValueInfo(AttentionMask, DataType.Int64, ["batch_size", "total_sequence_length"]);
            for (var layer = 0; layer < shape.Layers; layer++)
            {
                yield return Cache(PastKey(layer), "past_sequence_length");
                yield return Cache(PastValue(layer), "past_sequence_length");
            }
        }

        public IEnumerable<ValueInfoProto> Outputs()
        {
            yield return OnnxBuilder.TensorValueInfo(Logits, _type, ["batch_size", "sequence_length", shape.Vocab]);
            for (var layer = 0; layer < shape.Layers; layer++)
            {
                yield return Cache(PresentKey(layer), "total_sequence_length");
                yield return Cache(PresentValue(layer), "total_sequence_length");
            }
        }

        private ValueInfoProto Cache(string name, string length) =>
            OnnxBuilder.TensorValueInfo(name, _type, ["batch_size", shape.KvHeads, length, shape.HeadSize]);

        /// <summary>seqlens_k = Σ attention_mask − 1 per row, total_sequence_length = its width; both int32, as GroupQueryAttention takes them.</summary>
        private void AddMaskReformat()
        {
            const string prefix = "/model/attn_mask_reformat/attn_mask_subgraph";
            Initializers.Add(OnnxTensor.Create($"{prefix}/axes", [1L], 1));
            Initializers.Add(OnnxTensor.Create($"{prefix}/one", [1L]));
            var sum = Node("ReduceSum", $"{prefix}/ReduceSum", [AttentionMask, $"{prefix}/axes"], [OnnxBuilder.IntAttribute("keepdims", 0)]);
            var lastIndex = Node("Sub", $"{prefix}/Sub", [sum, $"{prefix}/one"]);
            Nodes.Add(OnnxBuilder.Node("Cast", [lastIndex], [SeqlensK], [OnnxBuilder.IntAttribute("to", (long)DataType.Int32)], $"{prefix}/Sub/Cast"));
            var shapeOf = Node("Shape", $"{prefix}/Shape", [AttentionMask]);
            var width = Node("Gather", $"{prefix}/Gather", [shapeOf, $"{prefix}/one"], [OnnxBuilder.IntAttribute("axis", 0)]);
            Nodes.Add(OnnxBuilder.Node("Cast", [width], [TotalSequenceLength], [OnnxBuilder.IntAttribute("to", (long)DataType.Int32)], $"{prefix}/Gather/Cast"));
        }

        private void AddRotaryTables()
        {
            var (cos, sin) = RotaryTables(shape.MaxLength, shape.HeadSize);
            long[] dims = [shape.MaxLength, shape.HeadSize / 2];
            Initializers.Add(Tensor(CosCache, cos, dims));
            Initializers.Add(Tensor(SinCache, sin, dims));
        }

        private string AddLayer(int layer, string residual)
        {
            var prefix = $"/model/layers.{layer}";
            var weights = $"model.layers.{layer}";
            int attention = shape.Heads * shape.HeadSize, kv = shape.KvHeads * shape.HeadSize;
            var normed = Norm($"{prefix}/input_layernorm", $"{weights}.input_layernorm.weight", residual);
            var query = Projection($"{prefix}/attn/q_proj", $"{weights}.attn.q_proj", normed, shape.Hidden, attention);
            var key = Projection($"{prefix}/attn/k_proj", $"{weights}.attn.k_proj", normed, shape.Hidden, kv);
            var value = Projection($"{prefix}/attn/v_proj", $"{weights}.attn.v_proj", normed, shape.Hidden, kv);
            var attended = $"{prefix}/attn/GroupQueryAttention/output_0";
            Nodes.Add(OnnxBuilder.Node("GroupQueryAttention",
                [query, key, value, PastKey(layer), PastValue(layer), SeqlensK, TotalSequenceLength, CosCache, SinCache],
                [attended, PresentKey(layer), PresentValue(layer)],
                [
                    OnnxBuilder.IntAttribute("num_heads", shape.Heads), OnnxBuilder.IntAttribute("kv_num_heads", shape.KvHeads),
                    OnnxBuilder.IntAttribute("do_rotary", 1), OnnxBuilder.IntAttribute("rotary_interleaved", 0),
                    OnnxBuilder.IntAttribute("local_window_size", -1),
                ],
                $"{prefix}/attn/GroupQueryAttention", "com.microsoft"));
            var projected = Projection($"{prefix}/attn/o_proj", $"{weights}.attn.o_proj", attended, attention, shape.Hidden);
            var afterAttention = Node("Add", $"{prefix}/residual_add/Add", [residual, projected]);

            var mlpInput = Norm($"{prefix}/post_attention_layernorm", $"{weights}.post_attention_layernorm.weight", afterAttention);
            var gate = Projection($"{prefix}/mlp/gate_proj", $"{weights}.mlp.gate_proj", mlpInput, shape.Hidden, shape.Intermediate);
            var up = Projection($"{prefix}/mlp/up_proj", $"{weights}.mlp.up_proj", mlpInput, shape.Hidden, shape.Intermediate);
            // SiLU(gate) = gate · σ(gate), then the gated product.
            var activated = Node("Mul", $"{prefix}/mlp/act_fn/Mul", [gate, Node("Sigmoid", $"{prefix}/mlp/act_fn/Sigmoid", [gate])]);
            var gated = Node("Mul", $"{prefix}/mlp/Mul", [activated, up]);
            var down = Projection($"{prefix}/mlp/down_proj", $"{weights}.mlp.down_proj", gated, shape.Intermediate, shape.Hidden);
            return Node("Add", $"{prefix}/residual_add_mlp/Add", [afterAttention, down]);
        }

        /// <summary>RMSNorm with a unit scale; SimplifiedLayerNormalization computes in float32 on the CPU and CUDA for either element type.</summary>
        private string Norm(string prefix, string weightName, string input)
        {
            Initializers.Add(Tensor(weightName, Enumerable.Repeat(1f, shape.Hidden).ToArray(), [shape.Hidden]));
            return Node("SimplifiedLayerNormalization", $"{prefix}/SimplifiedLayerNormalization", [input, weightName],
                [OnnxBuilder.IntAttribute("axis", -1), OnnxBuilder.FloatAttribute("epsilon", NormEpsilon), OnnxBuilder.IntAttribute("stash_type", 1)]);
        }

        private string Projection(string prefix, string weightPrefix, string input, int inFeatures, int outFeatures) =>
            Node("MatMul", $"{prefix}/MatMul", [input, Weight($"{weightPrefix}.MatMul.weight", 1 / Math.Sqrt(inFeatures), inFeatures, outFeatures)]);

        /// <summary>Adds a node with one output named after it ("{name}/output_0") and returns that name.</summary>
        private string Node(string opType, string name, string[] inputs, AttributeProto[]? attributes = null)
        {
            var output = $"{name}/output_0";
            Nodes.Add(OnnxBuilder.Node(opType, inputs, [output], attributes, name));
            return output;
        }

        /// <summary>A [rows, columns] weight of random values with standard deviation <paramref name="std"/>, optionally one column zero.</summary>
        private string Weight(string name, double std, int rows, int columns, int? zeroColumn = null)
        {
            var values = RandomWeights.Uniform((long)rows * columns, std, shape.Seed, _tensorIndex++);
            if (zeroColumn is { } column)
            {
                for (var row = 0; row < rows; row++)
                {
                    values[(long)row * columns + column] = 0;
                }
            }
            Initializers.Add(Tensor(name, values, [rows, columns]));
            return name;
        }

        private TensorProto Tensor(string name, float[] values, long[] dims)
        {
            if (_type == DataType.Float)
            {
                return OnnxTensor.Create(name, values, dims);
            }
            var halves = new Half[values.Length];
            Parallel.For(0, (values.Length + RandomWeights.Chunk - 1) / RandomWeights.Chunk, chunk =>
            {
                var end = Math.Min(values.Length, (chunk + 1) * RandomWeights.Chunk);
                for (var i = chunk * RandomWeights.Chunk; i < end; i++)
                {
                    halves[i] = (Half)values[i];
                }
            });
            return OnnxTensor.Create(name, halves, dims);
        }
    }
}
