namespace OrtSparse.Runtime;

/// <summary>Where a session runs its kernels.</summary>
public enum ExecutionDevice
{
    /// <summary>ONNX Runtime's CPU execution provider.</summary>
    Cpu,

    /// <summary>ONNX Runtime's CUDA execution provider, loaded as a plugin library.</summary>
    Cuda,
}
