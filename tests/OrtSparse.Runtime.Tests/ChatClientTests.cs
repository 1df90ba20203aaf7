using Microsoft.Extensions.AI;
using OrtSparse.Runtime.Chat;
using OrtSparse.Runtime.Generation;

namespace OrtSparse.Runtime.Tests;

public class ChatClientTests
{
    private static readonly ChatMessage[] Conversation =
    [
        new(ChatRole.System, "You write Python."),
        new(ChatRole.User, "def fibonacci(n):"),
    ];

    private static Model Load() => Model.Load(PatchedModels.TinyLlama(), TestDevice.Options);

    /// <summary>The tiny Llama's tokenizer has role tags, so messages become tagged turns ending where the reply starts.</summary>
    [Fact]
    public void MessagesRenderAsTaggedTurns()
    {
        using var model = Load();
        var format = ChatFormat.For(model.Tokenizer!);
        Assert.Equal("<|system|>\nYou write Python.<|end|>\n<|user|>\ndef fibonacci(n):<|end|>\n<|assistant|>\n", format.Render(Conversation));
        Assert.Contains(model.Tokenizer!.TokenToId("<|end|>")!.Value, format.StopTokenIds);
    }

    /// <summary>The client's answer is what the model generates from the rendered conversation, streamed or whole.</summary>
    [Fact]
    public async Task TheAnswerIsTheModelsGenerationFromTheRenderedConversation()
    {
        using var model = Load();
        using var client = new OrtSparseChatClient(model);
        var options = new ChatOptions { MaxOutputTokens = 12 };
        var format = ChatFormat.For(model.Tokenizer!);
        var expected = model.Generate(format.Render(Conversation), new GeneratorSettings { MaxNewTokens = 12, StopTokenIds = format.StopTokenIds, StopStrings = format.StopStrings });

        var response = await client.GetResponseAsync(Conversation, options, TestContext.Current.CancellationToken);
        Assert.Equal(expected.Text, response.Text);
        Assert.Equal(expected.FinishReason == FinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop, response.FinishReason);
        Assert.Equal(expected.TokenIds.Count, response.Usage!.OutputTokenCount);
        Assert.Equal(model.EncodePrompt(format.Render(Conversation)).Length, response.Usage.InputTokenCount);

        var streamed = new List<string>();
        await foreach (var update in client.GetStreamingResponseAsync(Conversation, options, TestContext.Current.CancellationToken))
        {
            streamed.Add(update.Text);
        }
        Assert.Equal(expected.Text, string.Concat(streamed));
    }

    [Fact]
    public async Task ChatOptionsReachTheSampler()
    {
        using var model = Load();
        using var client = new OrtSparseChatClient(model);
        ChatOptions Seeded(long seed) => new() { Temperature = 1.5f, TopK = 40, Seed = seed, MaxOutputTokens = 16 };
        var cancel = TestContext.Current.CancellationToken;
        var first = (await client.GetResponseAsync(Conversation, Seeded(3), cancel)).Text;
        Assert.Equal(first, (await client.GetResponseAsync(Conversation, Seeded(3), cancel)).Text);
        Assert.NotEqual(first, (await client.GetResponseAsync(Conversation, Seeded(4), cancel)).Text);
    }

    [Fact]
    public void TheClientDescribesItself()
    {
        using var model = Load();
        using IChatClient client = new OrtSparseChatClient(model);
        Assert.Equal("ortsparse", client.GetService<ChatClientMetadata>()!.ProviderName);
        Assert.Same(model, client.GetService<Model>());
    }
}
