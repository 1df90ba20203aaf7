#!/usr/bin/env python3
"""Makes the runtime's test fixtures on the GPU host (PyTorch, transformers, tokenizers, onnx; CPU
is enough): two tokenizers trained with Hugging Face `tokenizers` on the host's Python sources,
their reference token ids for tests/data/tokenizers/cases.json, and a tiny random-weight Llama
(vocabulary = the byte-level tokenizer's) exported with torch.onnx.export, with PyTorch's greedy
continuations of tokenized prompts.

    python3 models/make_runtime_fixtures.py OUT_DIR

Writes OUT_DIR/tokenizers/{bytelevel,metaspace}/{tokenizer.json, tokenizer_config.json,
reference_ids.json} and OUT_DIR/tiny-llama/{model.onnx, tokenizer.json, tokenizer_config.json,
generation.json}.
"""
import glob
import json
import os
import sys
import sysconfig

import onnx
import tokenizers
import torch
import transformers
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_corpus import LogitsOnly, greedy, strip_debug_info  # noqa: E402

VOCAB = 1024
TRAINING_BYTES = 4_000_000
HELD_OUT_CHARS = 6000
SPECIALS = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>"]
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
NEW_TOKENS = 24


def python_sources():
    """The host's standard-library .py files, sorted so every run reads the same text."""
    return sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "**", "*.py"), recursive=True))


def training_texts(files):
    total = 0
    for path in files[:-1]:  # the last file is held out
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        yield text
        total += len(text)
        if total >= TRAINING_BYTES:
            return


def byte_level(files):
    """GPT-2 / Llama-3 style: byte-level pre-tokenizer and decoder."""
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(training_texts(files), trainer)
    config = {"tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
              "unk_token": "<|endoftext|>", "add_bos_token": False, "add_eos_token": False, "model_max_length": 4096}
    return tok, config


def metaspace(files):
    """Llama-2 / SentencePiece style: '▁' for spaces, BPE with byte fallback for unseen characters."""
    trainer_tok = tokenizers.Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    specials = ["<unk>", "<s>", "</s>"]
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - 256, special_tokens=specials, show_progress=False,
                                  limit_alphabet=160)
    trainer_tok.train_from_iterator(training_texts(files), trainer)
    trained = json.loads(trainer_tok.to_str())
    # Byte pieces after the specials, as SentencePiece-converted Llama tokenizers order them.
    order = specials + BYTE_TOKENS + [t for t, _ in sorted(trained["model"]["vocab"].items(), key=lambda kv: kv[1])
                                      if t not in specials]
    vocab = {token: i for i, token in enumerate(order)}
    trained["model"].update(vocab=vocab, byte_fallback=True, fuse_unk=True)
    for added in trained["added_tokens"]:
        added["id"] = vocab[added["content"]]
    trained["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    trained["pre_tokenizer"] = None
    trained["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    tok = tokenizers.Tokenizer.from_str(json.dumps(trained))
    config = {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
              "add_bos_token": False, "add_eos_token": False, "legacy": True, "model_max_length": 4096}
    return tok, config


def save_tokenizer(tok, config, folder):
    os.makedirs(folder, exist_ok=True)
    tok.save(os.path.join(folder, "tokenizer.json"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=1)


def reference_ids(tok, cases, held_out):
    rows = []
    for text in cases + [held_out]:
        ids = tok.encode(text, add_special_tokens=False).ids
        rows.append({"text": text, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    return {"tokenizers": tokenizers.__version__, "vocab_size": tok.get_vocab_size(), "cases": rows}


def tiny_llama(tok, tok_config, folder):
    torch.manual_seed(4321)
    config = transformers.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=128, intermediate_size=256,
                                      num_attention_heads=2, num_key_value_heads=1, head_dim=64,
                                      num_hidden_layers=2, max_position_embeddings=4096, initializer_range=0.2,
                                      tie_word_embeddings=False, bos_token_id=0, eos_token_id=0)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="eager",
                                                          torch_dtype=torch.float32).eval()
    wrapper = LogitsOnly(model).eval()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    sample = torch.randint(4, tok.get_vocab_size(), (2, 12), generator=torch.Generator().manual_seed(7))
    dynamic = torch.export.Dim.DYNAMIC
    with torch.no_grad():
        program = torch.onnx.export(wrapper, (sample,), dynamo=True, opset_version=18, input_names=["input_ids"],
                                    output_names=["logits"], dynamic_shapes={"input_ids": {0: dynamic, 1: dynamic}},
                                    optimize=True)
    program.save(path, external_data=False)
    onnx.save(strip_debug_info(onnx.load(path)), path)
    save_tokenizer(tok, tok_config, folder)
    prompts = ["def fibonacci(n):\n", "import os\nimport sys\n\nclass Config:\n    def __init__(self",
               "# Copyright"]
    runs = []
    for text in prompts:
        ids = tok.encode(text, add_special_tokens=False).ids
        new = greedy(model, torch.tensor([ids]), NEW_TOKENS)[0].tolist()
        runs.append({"prompt": text, "prompt_ids": ids, "greedy_ids": new,
                     "greedy_text": tok.decode(new, skip_special_tokens=False)})
    with open(os.path.join(folder, "generation.json"), "w") as f:
        json.dump({"note": "PyTorch greedy continuations by full recomputation of every prefix, float32",
                   "torch": torch.__version__, "transformers": transformers.__version__, "new_tokens": NEW_TOKENS,
                   "runs": runs}, f, ensure_ascii=False, indent=1)


def main():
    out = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "tests", "data", "tokenizers", "cases.json"), encoding="utf-8") as f:
        cases = json.load(f)
    files = python_sources()
    with open(files[-1], encoding="utf-8", errors="replace") as f:
        held_out = f.read()[:HELD_OUT_CHARS]
    print(f"{len(files)} source files; held out {files[-1]}", flush=True)
    for name, make in (("bytelevel", byte_level), ("metaspace", metaspace)):
        tok, config = make(files)
        folder = os.path.join(out, "tokenizers", name)
        save_tokenizer(tok, config, folder)
        with open(os.path.join(folder, "reference_ids.json"), "w") as f:
            json.dump(reference_ids(tok, cases, held_out), f, ensure_ascii=False, indent=1)
        print(f"{name}: vocab {tok.get_vocab_size()}", flush=True)
        if name == "bytelevel":
            tiny_llama(tok, config, os.path.join(out, "tiny-llama"))
            print("tiny-llama exported", flush=True)


if __name__ == "__main__":
    main()
