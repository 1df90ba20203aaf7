using Google.Protobuf;
using Onnx;
using static OrtSparse.Onnx.OnnxBuilder;
using AttributeType = Onnx.AttributeProto.Types.AttributeType;
using DataType = Onnx.TensorProto.Types.DataType;

namespace OrtSparse.Onnx.Tests;

public sealed class ProtoRoundTripTests : IDisposable
{
    private readonly TempFolder _folder = new();

    public void Dispose() => _folder.Dispose();

    private ModelProto SaveAndLoad(ModelProto model)
    {
        var path = _folder.File($"{Guid.NewGuid():N}.onnx");
        new OnnxModel(model).Save(path);
        return OnnxModel.Load(path).Proto;
    }

    [Fact]
    public void EveryAttributeTypeSurvivesSaveAndLoad()
    {
        var subgraph = Graph("branch", [Node("Identity", ["a"], ["b"])], [TensorValueInfo("a", DataType.Float, [2])], [TensorValueInfo("b", DataType.Float, [2])]);
        var sparse = new SparseTensorProto { Values = OnnxTensor.Create("v", [1.5f, 2.5f], 2), Indices = OnnxTensor.Create("i", [1L, 3L], 2) };
        sparse.Dims.Add(4);
        var sequenceType = new TypeProto { SequenceType = new TypeProto.Types.Sequence { ElemType = TensorValueInfo("e", DataType.Int64, null).Type } };
        var attributes = new List<AttributeProto>
        {
            FloatAttribute("f", 0.25f),
            IntAttribute("i", -7),
            StringAttribute("s", "grüße"),
            TensorAttribute("t", OnnxTensor.Create("t", [1, 2, 3], 3)),
            GraphAttribute("g", subgraph),
            FloatsAttribute("floats", 1f, -2f),
            IntsAttribute("ints", 0, 1, long.MaxValue),
            StringsAttribute("strings", "a", "", "c"),
            new() { Name = "tensors", Type = AttributeType.Tensors, Tensors = { OnnxTensor.Create("a", [true, false], 2), OnnxTensor.Create("b", [Half.One], 1) } },
            new() { Name = "graphs", Type = AttributeType.Graphs, Graphs = { subgraph, subgraph } },
            new() { Name = "sparse", Type = AttributeType.SparseTensor, SparseTensor = sparse },
            new() { Name = "sparses", Type = AttributeType.SparseTensors, SparseTensors = { sparse, sparse } },
            new() { Name = "tp", Type = AttributeType.TypeProto, Tp = sequenceType },
            new() { Name = "tps", Type = AttributeType.TypeProtos, TypeProtos = { sequenceType, TensorValueInfo("o", DataType.Float16, ["n"]).Type } },
            new() { Name = "ref", Type = AttributeType.Float, RefAttrName = "alpha" },
        };
        Assert.Equal(Enum.GetValues<AttributeType>().Where(t => t != AttributeType.Undefined).Order(),
            attributes.Select(a => a.Type).Distinct().Order());
        var model = Model(Graph("g", [Node("Custom", ["x"], ["y"], attributes, name: "n", domain: "test")], [], []), [Opset("test", 1)]);

        var loaded = SaveAndLoad(model);

        Assert.Equal(model, loaded);
        var node = loaded.Graph.Node[0];
        Assert.Equal("grüße", node.Attribute.Single(a => a.Name == "s").S.ToStringUtf8());
        Assert.Equal(new[] { 1, 2, 3 }, OnnxTensor.ToInt32s(node.Attribute.Single(a => a.Name == "t").T));
    }

    [Fact]
    public void ZeroScalarAttributesAreStillWritten()
    {
        var attributes = new[] { IntAttribute("keepdims", 0), FloatAttribute("alpha", 0f), StringAttribute("mode", "") };
        var loaded = SaveAndLoad(Model(Graph("g", [Node("ReduceSum", ["x"], ["y"], attributes)], [], []), [Opset("", 18)]));

        var node = loaded.Graph.Node[0];
        Assert.True(node.Attribute[0].HasI);
        Assert.True(node.Attribute[1].HasF);
        Assert.True(node.Attribute[2].HasS);
    }

    public static TheoryData<DataType> AllDataTypes => new(Enum.GetValues<DataType>().Where(t => t is not (DataType.Undefined or DataType.String)));

    [Theory]
    [MemberData(nameof(AllDataTypes))]
    public void EveryDataTypeSurvivesSaveAndLoadInRawData(DataType type)
    {
        var tensor = new TensorProto { Name = "t", DataType = (int)type, Dims = { 3, 5 } };
        var bytes = TestBytes(ByteCount(tensor));
        tensor.RawData = ByteString.CopyFrom(bytes);

        var loaded = SaveAndLoad(Model(Graph("g", [], [], [], [tensor]), [Opset("", 21)]));

        Assert.Equal(tensor, loaded.Graph.Initializer[0]);
        Assert.Equal(bytes, OnnxTensor.ReadBytes(loaded.Graph.Initializer[0]));
    }

    [Theory]
    [MemberData(nameof(AllDataTypes))]
    public void TypedFieldsReadAsTheSameBytesAsRawData(DataType type)
    {
        var tensor = new TensorProto { Name = "t", DataType = (int)type, Dims = { 3, 5 } };
        var bytes = TestBytes(ByteCount(tensor));
        StoreInTypedField(tensor, bytes);

        Assert.True(tensor.RawData.IsEmpty);
        Assert.Equal(bytes, OnnxTensor.ReadBytes(tensor));
    }

    [Fact]
    public void StringTensorsAndModelLevelFieldsSurvive()
    {
        var strings = new TensorProto { Name = "words", DataType = (int)DataType.String, Dims = { 2 }, StringData = { ByteString.CopyFromUtf8("a"), ByteString.CopyFromUtf8("β") } };
        var node = Node("Gelu", ["x"], ["y"], name: "gelu", domain: "com.example");
        node.Overload = "fast";
        node.MetadataProps.Add(new StringStringEntryProto { Key = "k", Value = "v" });
        node.DeviceConfigurations.Add(new NodeDeviceConfigurationProto
        {
            ConfigurationId = "two_gpus",
            PipelineStage = 0,
            ShardingSpec =
            {
                new ShardingSpecProto
                {
                    TensorName = "x",
                    Device = { 0, 1 },
                    IndexToDeviceGroupMap = { new IntIntListEntryProto { Key = 0, Value = { 0, 1 } } },
                    ShardedDim = { new ShardedDimProto { Axis = 1, SimpleSharding = { new SimpleShardedDimProto { DimParam = "hidden", NumShards = 2 } } } },
                },
            },
        });
        var graph = Graph("main", [node], [TensorValueInfo("x", DataType.Float, ["batch", Dim.Unknown, 4])], [TensorValueInfo("y", DataType.Float, null)], [strings]);
        graph.SparseInitializer.Add(new SparseTensorProto { Values = OnnxTensor.Create("s", [1f], 1), Indices = OnnxTensor.Create("si", [0L], 1), Dims = { 8 } });
        graph.QuantizationAnnotation.Add(new TensorAnnotation { TensorName = "x", QuantParameterTensorNames = { new StringStringEntryProto { Key = "SCALE_TENSOR", Value = "x_scale" } } });
        graph.ValueInfo.Add(new ValueInfoProto
        {
            Name = "m",
            Type = new TypeProto
            {
                MapType = new TypeProto.Types.Map { KeyType = (int)DataType.Int64, ValueType = new TypeProto { OptionalType = new TypeProto.Types.Optional { ElemType = new TypeProto { SparseTensorType = new TypeProto.Types.SparseTensor { ElemType = (int)DataType.Float } } } } },
                Denotation = "TENSOR",
            },
        });
        var model = Model(graph, [Opset("", 21), Opset("com.example", 1)], irVersion: (long)global::Onnx.Version.IrVersion20250512);
        model.ModelVersion = 0;
        model.DocString = "doc";
        model.MetadataProps.Add(new StringStringEntryProto { Key = "author", Value = "tests" });
        model.TrainingInfo.Add(new TrainingInfoProto { Algorithm = Graph("step", [], [], []), UpdateBinding = { new StringStringEntryProto { Key = "w", Value = "w_new" } } });
        model.Functions.Add(new FunctionProto
        {
            Name = "Gelu",
            Domain = "com.example",
            Overload = "fast",
            Input = { "x" },
            Output = { "y" },
            Attribute = { "approximate" },
            AttributeProto = { FloatAttribute("alpha", 1f) },
            Node = { Node("Identity", ["x"], ["y"]) },
            OpsetImport = { Opset("", 21) },
        });
        model.Configuration.Add(new DeviceConfigurationProto { Name = "two_gpus", NumDevices = 2, Device = { "cuda:0", "cuda:1" } });

        var loaded = SaveAndLoad(model);

        Assert.Equal(model, loaded);
        Assert.True(loaded.HasModelVersion);
        Assert.True(loaded.Graph.Node[0].DeviceConfigurations[0].HasPipelineStage);
    }

    private static long ByteCount(TensorProto tensor)
    {
        var bits = ((DataType)tensor.DataType) switch
        {
            DataType.Uint2 or DataType.Int2 => 2,
            DataType.Uint4 or DataType.Int4 or DataType.Float4E2M1 => 4,
            DataType.Uint16 or DataType.Int16 or DataType.Float16 or DataType.Bfloat16 => 16,
            DataType.Float or DataType.Int32 or DataType.Uint32 => 32,
            DataType.Double or DataType.Int64 or DataType.Uint64 or DataType.Complex64 => 64,
            DataType.Complex128 => 128,
            _ => 8,
        };
        return (OnnxTensor.ElementCount(tensor) * bits + 7) / 8;
    }

    private static byte[] TestBytes(long count) => Enumerable.Range(0, (int)count).Select(i => (byte)(i * 37 + 11)).ToArray();

    /// <summary>Stores raw little-endian bytes in the typed field the ONNX spec assigns to the tensor's type.</summary>
    private static void StoreInTypedField(TensorProto tensor, byte[] bytes)
    {
        var type = (DataType)tensor.DataType;
        switch (type)
        {
            case DataType.Float or DataType.Complex64:
                tensor.FloatData.Add(Chunks(bytes, 4).Select(c => BitConverter.ToSingle(c)));
                break;
            case DataType.Double or DataType.Complex128:
                tensor.DoubleData.Add(Chunks(bytes, 8).Select(c => BitConverter.ToDouble(c)));
                break;
            case DataType.Int64:
                tensor.Int64Data.Add(Chunks(bytes, 8).Select(c => BitConverter.ToInt64(c)));
                break;
            case DataType.Uint64:
                tensor.Uint64Data.Add(Chunks(bytes, 8).Select(c => BitConverter.ToUInt64(c)));
                break;
            case DataType.Uint32:
                tensor.Uint64Data.Add(Chunks(bytes, 4).Select(c => (ulong)BitConverter.ToUInt32(c)));
                break;
            case DataType.Int32:
                tensor.Int32Data.Add(Chunks(bytes, 4).Select(c => BitConverter.ToInt32(c)));
                break;
            case DataType.Uint16 or DataType.Int16 or DataType.Float16 or DataType.Bfloat16:
                tensor.Int32Data.Add(Chunks(bytes, 2).Select(c => (int)BitConverter.ToUInt16(c)));
                break;
            default:
                // 8-bit types: one element per entry; sub-byte types: one packed byte per entry.
                tensor.Int32Data.Add(bytes.Select(b => (int)b));
                break;
        }
    }

    private static IEnumerable<byte[]> Chunks(byte[] bytes, int size) => bytes.Chunk(size);
}
