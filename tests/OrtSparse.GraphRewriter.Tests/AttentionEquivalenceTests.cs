using Onnx;
using OrtSparse.Cli.Bench;

namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// ONNX Runtime's own CPU kernel for ONNX Attention (opset 23/24) against the same model patched
/// to com.ortsparse.SparseAttention (method dense), on identical inputs: the output and the present
/// key/value caches must agree. With ORTSPARSE_TEST_DEVICE=cuda the patched model runs on the CUDA
/// provider (and every case also in fp16, the type the CUDA op prefills in); the reference stays on the CPU.
/// </summary>
public sealed class AttentionEquivalenceTests
{
    // Both kernels compute in fp32 but sum in different orders. A score is a dot product of D ≤ 128
    // terms of magnitude ≤ 1 (inputs are uniform in [-1, 1)), so its rounding error is at most about
    // D·ε32·max|q·k| ≈ 128 · 1.2e-7 · 10 ≈ 1.5e-4 absolute in the worst case and ~√D·ε32 typically;
    // softmax turns an absolute score error δ into a relative probability error δ, and the output is
    // a convex combination of values in [-1, 1]. 1e-5 + 1e-4·|expected| is ~10× the errors measured
    // (~1e-6) and far below any real bug (a wrong mask, scale or head mapping moves outputs by > 1e-2).
    private const double Atol = 1e-5, Rtol = 1e-4;

    // fp16 outputs and caches are rounded to 11 significant bits (half an ulp is 2.4e-4 to 4.9e-4
    // relative for |x| in [0.5, 1)), and ONNX Runtime's fp16 kernel may round intermediate scores or
    // probabilities to fp16 as well; a tolerance of about four fp16 ulps at |x| ≤ 1 covers both, while
    // a real bug still shows as errors above 1e-2.
    private const double AtolFp16 = 2e-3, RtolFp16 = 2e-3;

    public static TheoryData<AttentionCase> Cases()
    {
        var data = new TheoryData<AttentionCase>();
        foreach (var opset in new[] { 23, 24 })
        {
            foreach (var c in BaseCases())
            {
                data.Add(c with { Opset = opset });
            }
        }
        // Every third case in fp16; on CUDA every case, since the CUDA op prefills in fp16 (and bf16) only.
        foreach (var c in BaseCases().Where((_, i) => TestDevice.IsCuda || i % 3 == 0))
        {
            data.Add(c with { ElementType = TensorProto.Types.DataType.Float16 });
        }
        return data;
    }

    private static IEnumerable<AttentionCase> BaseCases()
    {
        // Decode steps (S = 1) against a cache, MHA and GQA.
        yield return new AttentionCase { Batch = 1, QueryLength = 1, PastLength = 15, NumHeads = 4, KvNumHeads = 4, HeadDim = 64 };
        yield return new AttentionCase { Batch = 2, QueryLength = 1, PastLength = 33, NumHeads = 8, KvNumHeads = 2, HeadDim = 128 };
        yield return new AttentionCase { Batch = 1, QueryLength = 1, PastLength = 70, NumHeads = 6, KvNumHeads = 1, HeadDim = 96 };
        // Prefill without a cache, and chunked prefill after a cached prefix.
        yield return new AttentionCase { Batch = 2, QueryLength = 9, PastLength = 0, NumHeads = 4, KvNumHeads = 2, HeadDim = 80 };
        yield return new AttentionCase { Batch = 1, QueryLength = 6, PastLength = 10, NumHeads = 6, KvNumHeads = 3, HeadDim = 64 };
        yield return new AttentionCase { Batch = 2, QueryLength = 40, PastLength = 24, NumHeads = 4, KvNumHeads = 2, HeadDim = 64 };
        // Not causal.
        yield return new AttentionCase { Batch = 1, QueryLength = 4, PastLength = 5, NumHeads = 4, KvNumHeads = 1, HeadDim = 64, IsCausal = false };
        // 4-D (BNSH) inputs, with and without a cache.
        yield return new AttentionCase { Batch = 2, QueryLength = 5, PastLength = 7, NumHeads = 4, KvNumHeads = 2, HeadDim = 64, Rank = 4 };
        yield return new AttentionCase { Batch = 1, QueryLength = 8, PastLength = 0, NumHeads = 2, KvNumHeads = 2, HeadDim = 64, Rank = 4, IsCausal = false };
        yield return new AttentionCase { Batch = 1, QueryLength = 1, PastLength = 20, NumHeads = 8, KvNumHeads = 2, HeadDim = 128, Rank = 4 };
        // Boolean and additive masks of each rank, with and without causality.
        yield return new AttentionCase { Batch = 2, QueryLength = 5, PastLength = 6, NumHeads = 4, KvNumHeads = 2, HeadDim = 64, IsCausal = false, Mask = MaskKind.Bool, MaskRank = 2 };
        yield return new AttentionCase { Batch = 2, QueryLength = 5, PastLength = 6, NumHeads = 4, KvNumHeads = 2, HeadDim = 64, IsCausal = false, Mask = MaskKind.Bool, MaskRank = 4 };
        yield return new AttentionCase { Batch = 1, QueryLength = 3, PastLength = 9, NumHeads = 4, KvNumHeads = 4, HeadDim = 64, IsCausal = false, Mask = MaskKind.Additive, MaskRank = 3 };
        yield return new AttentionCase { Batch = 2, QueryLength = 4, PastLength = 4, NumHeads = 4, KvNumHeads = 2, HeadDim = 64, IsCausal = false, Mask = MaskKind.Additive, MaskRank = 4 };
        yield return new AttentionCase { Batch = 1, QueryLength = 6, PastLength = 3, NumHeads = 4, KvNumHeads = 2, HeadDim = 64, Mask = MaskKind.Bool, MaskRank = 2 };
        yield return new AttentionCase { Batch = 2, QueryLength = 1, PastLength = 12, NumHeads = 4, KvNumHeads = 2, HeadDim = 64, Mask = MaskKind.Additive, MaskRank = 4 };
        // Scale and softcap.
        yield return new AttentionCase { Batch = 1, QueryLength = 4, PastLength = 8, NumHeads = 4, KvNumHeads = 2, HeadDim = 64, Scale = 0.3f };
        yield return new AttentionCase { Batch = 1, QueryLength = 4, PastLength = 8, NumHeads = 4, KvNumHeads = 2, HeadDim = 64, Softcap = 2.5f, Scale = 0.5f };
        // A value head size different from the key head size.
        yield return new AttentionCase { Batch = 1, QueryLength = 3, PastLength = 5, NumHeads = 2, KvNumHeads = 1, HeadDim = 64, ValueHeadDim = 32 };
        // Cross attention: more keys than queries, no cache.
        yield return new AttentionCase { Batch = 2, QueryLength = 3, KeyLength = 7, PastLength = 0, NumHeads = 4, KvNumHeads = 2, HeadDim = 64, IsCausal = false };
        // An empty cache (the first step of a model exported with past inputs).
        yield return new AttentionCase { Batch = 1, QueryLength = 5, PastLength = 0, WithCache = true, NumHeads = 4, KvNumHeads = 2, HeadDim = 64 };
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void PatchedModelMatchesOnnxRuntimeAttention(AttentionCase attentionCase)
    {
        var model = attentionCase.BuildModel();
        var patched = ModelPatcher.Patch(model).Model;
        Assert.Contains(patched.Graph.Node, n => n.OpType == SparseAttentionOp.OpType && n.Domain == SparseAttentionOp.Domain);
        Assert.DoesNotContain(patched.Graph.Node, n => n.OpType == "Attention" && n.Domain.Length == 0);

        var inputs = attentionCase.CreateInputs(seed: 7);
        try
        {
            var expected = Sessions.Run(model, inputs, withOrtSparse: false);
            var actual = Sessions.Run(patched, inputs, withOrtSparse: true);
            Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
            var (atol, rtol) = attentionCase.ElementType == TensorProto.Types.DataType.Float16 ? (AtolFp16, RtolFp16) : (Atol, Rtol);
            foreach (var (name, (shape, want)) in expected)
            {
                var (gotShape, got) = actual[name];
                Assert.Equal(shape, gotShape);
                for (var i = 0; i < want.Length; i++)
                {
                    var error = Math.Abs(got[i] - want[i]);
                    Assert.True(error <= atol + rtol * Math.Abs(want[i]),
                        $"{name}[{i}]: ours {got[i]:g9}, ONNX Runtime {want[i]:g9}, |diff| {error:g3} over {attentionCase}");
                }
            }
        }
        finally
        {
            foreach (var value in inputs.Values)
            {
                value.Dispose();
            }
        }
    }
}
