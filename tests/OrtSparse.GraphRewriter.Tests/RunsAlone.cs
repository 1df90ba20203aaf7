namespace OrtSparse.GraphRewriter.Tests;

/// <summary>
/// Test classes that run after the others, one at a time. The recall measure (LayerRecall, also inside bench fidelity)
/// runs one-node SparseAttention sessions with in-place caches; with these classes beside the rest of the suite, the test
/// process died of SIGSEGV inside ONNX Runtime in 5 of 5 full runs on 2 cores (never with them excluded, 2 of 2). The cause
/// is not found yet; alone they pass.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class RunsAlone
{
    /// <summary>The collection's name.</summary>
    public const string Name = "Runs alone";
}
