// Writes the sample model of the README's first command: a token embedding and two attention
// layers (hidden 128, 2 query heads and 1 key/value head of size 64, a KV cache per layer) in the form
// torch.onnx.export(dynamo=True, opset 23) gives SDPA attention, with seeded random weights, and
// two data sets (a chunked prefill and a decode step) whose expected outputs come from ONNX
// Runtime's own CPU kernels running the unpatched model.
//   dotnet run --project models/SampleModel -- models/sample
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using OrtSparse.Cli;

const int Vocabulary = 256, Hidden = 128, Heads = 2, KvHeads = 1, HeadDim = 64, Layers = 2, Seed = 20261122;
var outputDir = args.Length == 1 ? args[0] : throw new ArgumentException("usage: SampleModel OUTPUT_DIR");
Directory.CreateDirectory(outputDir);

var random = new Random(Seed);
var graph = new GraphProto { Name = "ortsparse_sample" };
var typeFloat = TensorProto.Types.DataType.Float;
graph.Input.Add(Symbolic("input_ids", TensorProto.Types.DataType.Int64, "batch", "sequence"));
var embedding = new TensorProto { Name = "embed_tokens.weight", DataType = (int)typeFloat };
embedding.Dims.Add([Vocabulary, Hidden]);
embedding.FloatData.Add(Enumerable.Range(0, Vocabulary * Hidden).Select(_ => (float)(random.NextDouble() * 2 - 1)));
graph.Initializer.Add(embedding);
graph.Node.Add(Node("Gather", "/embed_tokens/Gather", ["embed_tokens.weight", "input_ids"], ["/embed_tokens/output"]));
var x = "/embed_tokens/output";
for (var layer = 0; layer < Layers; layer++)
{
    string Weight(string name, int rows, int cols)
    {
        var weightName = $"layers.{layer}.{name}";
        var scale = 1 / Math.Sqrt(rows);
        var tensor = new TensorProto { Name = weightName, DataType = (int)typeFloat };
        tensor.Dims.Add([rows, cols]);
        tensor.FloatData.Add(Enumerable.Range(0, rows * cols).Select(_ => (float)((random.NextDouble() * 2 - 1) * scale * 1.7)));
        graph.Initializer.Add(tensor);
        return weightName;
    }
    var prefix = $"/layers.{layer}/attn";
    graph.Input.Add(Symbolic($"past_key_values.{layer}.key", "batch", KvHeads, "past_sequence", HeadDim));
    graph.Input.Add(Symbolic($"past_key_values.{layer}.value", "batch", KvHeads, "past_sequence", HeadDim));
    graph.Node.Add(Node("MatMul", $"{prefix}/q_proj/MatMul", [x, Weight("q_proj", Hidden, Heads * HeadDim)], [$"{prefix}/q"]));
    graph.Node.Add(Node("MatMul", $"{prefix}/k_proj/MatMul", [x, Weight("k_proj", Hidden, KvHeads * HeadDim)], [$"{prefix}/k"]));
    graph.Node.Add(Node("MatMul", $"{prefix}/v_proj/MatMul", [x, Weight("v_proj", Hidden, KvHeads * HeadDim)], [$"{prefix}/v"]));
    var attention = Node("Attention", $"{prefix}/Attention", [$"{prefix}/q", $"{prefix}/k", $"{prefix}/v", "", $"past_key_values.{layer}.key", $"past_key_values.{layer}.value"],
        [$"{prefix}/attn_output", $"present.{layer}.key", $"present.{layer}.value"]);
    attention.Attribute.Add(new AttributeProto { Name = "is_causal", Type = AttributeProto.Types.AttributeType.Int, I = 1 });
    attention.Attribute.Add(new AttributeProto { Name = "q_num_heads", Type = AttributeProto.Types.AttributeType.Int, I = Heads });
    attention.Attribute.Add(new AttributeProto { Name = "kv_num_heads", Type = AttributeProto.Types.AttributeType.Int, I = KvHeads });
    graph.Node.Add(attention);
    graph.Node.Add(Node("MatMul", $"{prefix}/o_proj/MatMul", [$"{prefix}/attn_output", Weight("o_proj", Heads * HeadDim, Hidden)], [$"{prefix}/o"]));
    var next = layer == Layers - 1 ? "last_hidden_state" : $"/layers.{layer}/output";
    graph.Node.Add(Node("Add", $"/layers.{layer}/residual", [x, $"{prefix}/o"], [next]));
    x = next;
}
graph.Output.Add(Symbolic("last_hidden_state", "batch", "sequence", Hidden));
for (var layer = 0; layer < Layers; layer++)
{
    graph.Output.Add(Symbolic($"present.{layer}.key", "batch", KvHeads, "total_sequence", HeadDim));
    graph.Output.Add(Symbolic($"present.{layer}.value", "batch", KvHeads, "total_sequence", HeadDim));
}
var model = new ModelProto { IrVersion = 10, ProducerName = "ortsparse-sample", ProducerVersion = "1", Graph = graph };
model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 23 });
var modelPath = Path.Combine(outputDir, "model.onnx");
File.WriteAllBytes(modelPath, model.ToByteArray());

using var session = new InferenceSession(modelPath);
WriteDataSet(0, batch: 2, sequence: 5, past: 7);   // a chunked prefill after a cached prefix
WriteDataSet(1, batch: 1, sequence: 1, past: 12);  // a decode step
Console.WriteLine($"wrote {modelPath} and 2 data sets");

void WriteDataSet(int index, int batch, int sequence, int past)
{
    var dir = Path.Combine(outputDir, $"test_data_set_{index}");
    Directory.CreateDirectory(dir);
    var inputs = new List<(string Name, OrtValue Value)>();
    float[] Values(long count) => Enumerable.Range(0, (int)count).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
    var tokens = Enumerable.Range(0, batch * sequence).Select(_ => (long)random.Next(Vocabulary)).ToArray();
    inputs.Add(("input_ids", OrtValue.CreateTensorValueFromMemory(tokens, [batch, sequence])));
    for (var layer = 0; layer < Layers; layer++)
    {
        foreach (var kind in new[] { "key", "value" })
        {
            inputs.Add(($"past_key_values.{layer}.{kind}", OrtValue.CreateTensorValueFromMemory(Values(batch * KvHeads * past * HeadDim), [batch, KvHeads, past, HeadDim])));
        }
    }
    using var outputs = session.Run(new RunOptions(), inputs.Select(i => i.Name).ToArray(), inputs.Select(i => i.Value).ToArray(), session.OutputNames);
    for (var i = 0; i < inputs.Count; i++)
    {
        File.WriteAllBytes(Path.Combine(dir, $"input_{i}.pb"), TensorValues.ToTensorProto(inputs[i].Value, inputs[i].Name).ToByteArray());
    }
    var outputList = outputs.ToList();
    for (var i = 0; i < outputList.Count; i++)
    {
        File.WriteAllBytes(Path.Combine(dir, $"output_{i}.pb"), TensorValues.ToTensorProto(outputList[i], session.OutputNames[i]).ToByteArray());
    }
    inputs.ForEach(i => i.Value.Dispose());
}

static NodeProto Node(string opType, string name, string[] inputs, string[] outputs)
{
    var node = new NodeProto { OpType = opType, Name = name };
    node.Input.Add(inputs.Reverse().SkipWhile(i => i == "").Reverse());
    node.Output.Add(outputs);
    return node;
}

static ValueInfoProto Symbolic(string name, params object[] dims)
{
    var elementType = TensorProto.Types.DataType.Float;
    if (dims.Length > 0 && dims[0] is TensorProto.Types.DataType given)
    {
        elementType = given;
        dims = dims[1..];
    }
    var shape = new TensorShapeProto();
    shape.Dim.Add(dims.Select(d => d is string param ? new TensorShapeProto.Types.Dimension { DimParam = param } : new TensorShapeProto.Types.Dimension { DimValue = Convert.ToInt64(d) }));
    return new ValueInfoProto { Name = name, Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)elementType, Shape = shape } } };
}
