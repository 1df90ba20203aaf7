namespace OrtSparse.Runtime.Tests;

public class RepositoryFilesTests
{
    [Fact]
    public void FindsTheTinyModel() => Assert.True(File.Exists(RepositoryFiles.PathOf("models/tiny-llama/model.onnx")));
}
