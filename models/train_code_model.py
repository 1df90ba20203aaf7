#!/usr/bin/env python3
"""Trains OrtSparse's shipped model on the GPU host: a small Llama (GQA, RoPE, context 8192) on the
Python sources installed there, with a byte-level BPE tokenizer trained by Hugging Face `tokenizers`.
Training stops within --time-limit seconds and saves its weights (checkpoint.pt, fp32, no optimizer
state: about 10 MB, so it can be carried to a fresh machine); a later run resumes from them with a fresh
optimizer and the schedule continued from the saved step.

    python3 models/train_code_model.py WORK_DIR [--time-limit 360] [--steps 1200] [--export OUT_DIR] [--heldout DIR]

WORK_DIR gets the tokenizer, the tokenized corpus (train/validation/test by a hash of each file's path;
never committed), checkpoint.pt and metrics.json (held-out perplexity). --export then writes OUT_DIR:
model.onnx (torch.onnx.export, opset 18, float16 weights behind casts to float32), tokenizer.json,
tokenizer_config.json, metrics.json and train_config.json. --heldout writes held-out test files and
validation token files (see heldout()).
"""
import argparse
import glob
import hashlib
import json
import math
import os
import sys
import sysconfig
import time

import numpy as np
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

VOCAB = 4096
CONTEXT = 8192
SPECIALS = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>"]
CORPUS_CHARS = 80_000_000
TOKENIZER_CHARS = 20_000_000


def config(attention):
    """About 2.6 M parameters: fp16 weights about 5 MB (the tracked tree must stay under 16 MiB). Head size 64, which the
    CUDA op takes; 4 query heads share 2 KV heads."""
    return transformers.LlamaConfig(attn_implementation=attention, vocab_size=VOCAB, hidden_size=192, intermediate_size=512, num_hidden_layers=4,
                                    num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                                    max_position_embeddings=CONTEXT, rope_theta=10000.0, tie_word_embeddings=True,
                                    bos_token_id=0, eos_token_id=0)


def split_of(path):
    """train / validation / test by a hash of the file's path: 96 / 2 / 2 %."""
    bucket = int(hashlib.sha1(path.encode()).hexdigest(), 16) % 100
    return "validation" if bucket < 2 else "test" if bucket < 4 else "train"


def source_files():
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib")}
    files = sorted({f for root in roots for f in glob.glob(os.path.join(root, "**", "*.py"), recursive=True)})
    return [f for f in files if os.path.getsize(f) > 0]


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def prepare(work):
    """Tokenizer and tokenized splits (uint16 token files, documents joined by <|endoftext|>)."""
    tokenizer_path = os.path.join(work, "tokenizer.json")
    files = source_files()
    if not os.path.exists(tokenizer_path):
        train_files = [f for f in files if split_of(f) == "train"]
        sample, total = [], 0
        for f in train_files[::7]:
            text = read(f)
            sample.append(text)
            total += len(text)
            if total > TOKENIZER_CHARS:
                break
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=SPECIALS, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tokenizer.train_from_iterator(sample, trainer)
        tokenizer.save(tokenizer_path)
        with open(os.path.join(work, "tokenizer_config.json"), "w") as f:
            json.dump({"tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
                       "unk_token": "<|endoftext|>", "add_bos_token": False, "add_eos_token": False,
                       "model_max_length": CONTEXT}, f, indent=1)
        print(f"tokenizer: vocabulary {tokenizer.get_vocab_size()} from {total / 1e6:.0f} M characters", flush=True)
    tokenizer = Tokenizer.from_file(tokenizer_path)
    eos = tokenizer.token_to_id("<|endoftext|>")
    for split in ("train", "validation", "test"):
        path = os.path.join(work, f"{split}.bin")
        if os.path.exists(path):
            continue
        chosen = [f for f in files if split_of(f) == split]
        texts, total = [], 0
        for f in chosen:
            text = read(f)
            texts.append(text)
            total += len(text)
            if split == "train" and total > CORPUS_CHARS:
                break
        ids = []
        for start in range(0, len(texts), 2000):
            for encoding in tokenizer.encode_batch(texts[start:start + 2000]):
                ids.extend(encoding.ids)
                ids.append(eos)
        np.array(ids, dtype=np.uint16).tofile(path + ".tmp")
        os.replace(path + ".tmp", path)
        with open(os.path.join(work, f"{split}.files.json"), "w") as f:
            json.dump(chosen[:len(texts)], f)
        print(f"{split}: {len(texts)} files, {total / 1e6:.1f} M characters, {len(ids) / 1e6:.1f} M tokens", flush=True)


# Assignments planted in training sequences and repeated later, so the model learns to recall a value from far back
# (the skill `ortsparse bench fidelity`'s needle test measures; its name SECRET_TOKEN is never planted).
RECALL_WORDS = ["API", "KEY", "BUILD", "CACHE", "USER", "SESSION", "HASH", "SEED", "VERSION", "CONFIG", "REMOTE", "LOCAL",
                "DEFAULT", "PRIVATE", "PUBLIC", "ACCESS", "CLIENT", "SERVER", "DATA", "MODEL", "PATH", "ID", "SECRET", "TOKEN"]
RECALL_SHARE = 0.5


class RecallLines:
    """A pool of tokenized lines `NAME = "8 hex digits"` and which vocabulary entries end a line."""

    def __init__(self, tokenizer, seed=0, count=50_000):
        rng = np.random.default_rng(seed)
        lines = []
        while len(lines) < count:
            name = "_".join(RECALL_WORDS[i] for i in rng.integers(0, len(RECALL_WORDS), rng.integers(1, 3)))
            if name != "SECRET_TOKEN":
                lines.append(f'{name} = "{rng.integers(0, 16 ** 8):08x}"\n')
        self.lines = [np.array(e.ids, dtype=np.int64) for e in tokenizer.encode_batch(lines)]
        self.ends_line = np.array([tokenizer.decode([i]).endswith("\n") for i in range(tokenizer.get_vocab_size())])

    def plant(self, sequence, rng):
        """1-3 lines inserted after line ends of `sequence` and each repeated after a later line end; same length."""
        for _ in range(rng.integers(1, 4)):
            ends = np.flatnonzero(self.ends_line[sequence[:-32]])
            if len(ends) < 2:
                break
            first, second = np.sort(rng.choice(ends, 2, replace=False))
            line = self.lines[rng.integers(0, len(self.lines))]
            sequence = np.concatenate([sequence[:first + 1], line, sequence[first + 1:second + 1], line, sequence[second + 1:]])
        return sequence


def batches(data, batch, context, generator, recall=None):
    starts = torch.randint(0, len(data) - context - 1, (batch,), generator=generator)
    rng = np.random.default_rng(int(torch.randint(0, 2 ** 31, (1,), generator=generator)))
    rows = []
    for s in starts.tolist():
        row = data[s:s + context + 1].astype(np.int64)
        if recall is not None and rng.random() < RECALL_SHARE:
            row = recall.plant(row, rng)[:context + 1]
        rows.append(torch.from_numpy(row))
    x = torch.stack(rows)
    return x[:, :-1], x[:, 1:]


@torch.no_grad()
def perplexity(model, data, context, device, windows=24):
    """Mean next-token loss over evenly spaced windows of the split, as perplexity."""
    model.eval()
    losses = []
    step = max(1, (len(data) - context - 1) // windows)
    for start in range(0, len(data) - context - 1, step)[:windows]:
        x = torch.from_numpy(data[start:start + context + 1].astype(np.int64)).to(device)[None]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x[:, :-1]).logits
        losses.append(torch.nn.functional.cross_entropy(logits.float()[0], x[0, 1:]).item())
    model.train()
    return math.exp(sum(losses) / len(losses))


def train(work, args):
    device = "cuda"
    torch.manual_seed(0)
    data = np.memmap(os.path.join(work, "train.bin"), dtype=np.uint16, mode="r")
    validation = np.memmap(os.path.join(work, "validation.bin"), dtype=np.uint16, mode="r")
    test = np.memmap(os.path.join(work, "test.bin"), dtype=np.uint16, mode="r")
    model = transformers.LlamaForCausalLM(config("sdpa")).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    checkpoint = os.path.join(work, "checkpoint.pt")
    step, generator = 0, torch.Generator().manual_seed(1)
    if os.path.exists(checkpoint):
        state = torch.load(checkpoint, map_location=device)
        model.load_state_dict(state["model"])
        step = state["step"]
        generator.manual_seed(1 + step)
        print(f"resumed at step {step} (fresh optimizer)", flush=True)
    recall = RecallLines(Tokenizer.from_file(os.path.join(work, "tokenizer.json")))
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model: {parameters / 1e6:.2f} M parameters; train {len(data) / 1e6:.0f} M tokens", flush=True)
    started = time.time()
    model.train()
    while step < args.steps and time.time() - started < args.time_limit:
        # Shorter sequences first, then the full context: cheap early steps, long-range attention at the end.
        context = 1024 if step < args.steps // 3 else CONTEXT
        batch = args.tokens_per_step // context
        lr = args.lr * min(1.0, (step + 1) / 100) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        x, y = batches(data, batch, context, generator, recall)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x.to(device)).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, VOCAB), y.to(device).view(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
        if step % 50 == 0:
            print(f"step {step} context {context} loss {loss.item():.3f} lr {lr:.2e} {time.time() - started:.0f} s", flush=True)
    state = {"model": model.state_dict(), "step": step}
    torch.save(state, checkpoint + ".tmp")
    os.replace(checkpoint + ".tmp", checkpoint)
    metrics = {"step": step, "steps": args.steps, "parameters": parameters,
               "validation_perplexity_8192": perplexity(model, validation, CONTEXT, device),
               "test_perplexity_8192": perplexity(model, test, CONTEXT, device)}
    with open(os.path.join(work, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    print(json.dumps(metrics), flush=True)


def half_storage(model, numpy_helper, helper, onnx):
    """Stores every large float initializer as float16 behind a Cast to float: the file is half the size, the graph
    still computes in float32 (ONNX Runtime folds the casts at load), so CPU kernels run it. An initializer that is the
    transpose of another (the tied output projection) becomes a Transpose of it instead of a second copy."""
    graph = model.graph
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    large = {n for n, a in arrays.items() if a.dtype == np.float32 and a.size >= 4096}
    transposed = {}
    for name in sorted(large):
        a = arrays[name]
        for other in sorted(large - {name} - set(transposed)):
            b = arrays[other]
            if a.ndim == 2 and b.shape == a.shape[::-1] and np.array_equal(a, b.T):
                transposed[name] = other
                break
    nodes, kept = [], []
    for tensor in graph.initializer:
        name = tensor.name
        if name in transposed:
            nodes.append(helper.make_node("Transpose", [transposed[name]], [name], perm=[1, 0], name=f"{name}_transpose"))
        elif name in large:
            kept.append(numpy_helper.from_array(arrays[name].astype(np.float16), f"{name}_fp16"))
            nodes.append(helper.make_node("Cast", [f"{name}_fp16"], [name], to=onnx.TensorProto.FLOAT, name=f"{name}_cast"))
        else:
            kept.append(tensor)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    # Casts first, then the transposes that read their outputs, then the graph.
    nodes.sort(key=lambda n: n.op_type == "Transpose")
    original = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + original)
    return model


def export(work, out):
    """OUT/model.onnx: input_ids [B, S] -> logits [B, S, V], float32 compute with float16 weights."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from export_corpus import LogitsOnly, strip_debug_info
    import onnx
    from onnx import helper, numpy_helper

    state = torch.load(os.path.join(work, "checkpoint.pt"), map_location="cpu")
    model = transformers.LlamaForCausalLM(config("eager"))
    model.load_state_dict(state["model"])
    # The shipped weights are the float16 ones; the float32 graph computes with exactly them. Parameters only: the
    # rotary embedding's inverse frequencies (a buffer) stay float32.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
    model = model.eval()
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "model.onnx")
    # Batch 2: torch.export specialises a dimension whose example size is 1, and the batch must stay dynamic.
    sample = torch.randint(4, VOCAB, (2, 16))
    dynamic = torch.export.Dim.DYNAMIC
    with torch.no_grad():
        program = torch.onnx.export(LogitsOnly(model), (sample,), dynamo=True, opset_version=18, input_names=["input_ids"],
                                    output_names=["logits"], dynamic_shapes={"input_ids": {0: dynamic, 1: dynamic}},
                                    optimize=True)
    program.save(path + ".tmp", external_data=False)
    exported = half_storage(strip_debug_info(onnx.load(path + ".tmp")), numpy_helper, helper, onnx)
    onnx.checker.check_model(exported)
    onnx.save(exported, path + ".tmp")
    os.replace(path + ".tmp", path)
    for name in ("tokenizer.json", "tokenizer_config.json", "metrics.json"):
        with open(os.path.join(work, name), "rb") as source, open(os.path.join(out, name), "wb") as target:
            target.write(source.read())
    with open(os.path.join(out, "train_config.json"), "w") as f:
        json.dump(config("eager").to_dict(), f, indent=1, default=str)
    print(f"exported {os.path.getsize(path) / 1e6:.2f} MB to {path}", flush=True)


def heldout(work, out, max_chars=3_000_000):
    """OUT/test/*.py: files of the test split (about max_chars characters), for `ortsparse bench fidelity --text`;
    OUT/validation/*.txt: token id files of CONTEXT tokens from the validation split, for `ortsparse calibrate`."""
    files = json.load(open(os.path.join(work, "test.files.json")))
    os.makedirs(os.path.join(out, "test"), exist_ok=True)
    total = 0
    for i, path in enumerate(files):
        text = read(path)
        with open(os.path.join(out, "test", f"{i:04d}.py"), "w", encoding="utf-8") as f:
            f.write(text)
        total += len(text)
        if total > max_chars:
            break
    validation = np.memmap(os.path.join(work, "validation.bin"), dtype=np.uint16, mode="r")
    os.makedirs(os.path.join(out, "validation"), exist_ok=True)
    for i in range(8):
        start = i * (len(validation) - CONTEXT) // 8
        ids = validation[start:start + CONTEXT]
        with open(os.path.join(out, "validation", f"{i}.txt"), "w") as f:
            f.write(" ".join(str(int(t)) for t in ids) + "\n")
    written = len(os.listdir(os.path.join(out, "test")))
    print(f"held out: {written} test files ({total / 1e6:.1f} M characters), 8 validation token files", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("work")
    parser.add_argument("--time-limit", type=float, default=360)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--tokens-per-step", type=int, default=131072)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--export")
    parser.add_argument("--heldout", help="write held-out test files and validation token files here")
    parser.add_argument("--no-train", action="store_true", help="only prepare, export and write held-out data")
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    prepare(args.work)
    if not args.no_train:
        train(args.work, args)
    if args.export:
        export(args.work, args.export)
    if args.heldout:
        heldout(args.work, args.heldout)


if __name__ == "__main__":
    main()
