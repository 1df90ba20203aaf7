#!/usr/bin/env python3
"""Exports the rewriter's test corpus: tiny random-weight Hugging Face decoders through
torch.onnx.export (dynamo) at opset 18 and 23, with eager and SDPA attention, plus PyTorch's
reference logits in the ONNX test-data layout and greedy generations computed by full
recomputation. Runs on the GPU host (PyTorch, transformers, onnx); CPU is enough.

    python3 models/export_corpus.py OUT_DIR [--families llama,qwen2,...] [--opsets 18,23]

Writes OUT_DIR/<family>-<attention>-opset<N>/{model.onnx, test_data_set_0/, generation.json}
and OUT_DIR/manifest.json (one entry per export attempt, failed ones with the exporter's error).
"""
import argparse
import collections
import json
import os
import sys
import traceback

import onnx
import torch
import transformers
from onnx import numpy_helper

VOCAB = 128
PROMPT_TOKENS = 8
NEW_TOKENS = 32


def configs():
    """Tiny configurations: 2 layers, hidden 32, head dim 8; GQA where the family has it."""
    common = dict(vocab_size=VOCAB, num_hidden_layers=2, initializer_range=0.2, tie_word_embeddings=False)
    rope = dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, max_position_embeddings=64, **common)
    return {
        "llama": lambda: transformers.LlamaConfig(num_key_value_heads=2, **rope),
        "qwen2": lambda: transformers.Qwen2Config(num_key_value_heads=2, use_sliding_window=False, **rope),
        "mistral": lambda: transformers.MistralConfig(num_key_value_heads=2, sliding_window=None, **rope),
        "phi3": lambda: transformers.Phi3Config(num_key_value_heads=4, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                                                **rope),
        "gpt2": lambda: transformers.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64,
                                                initializer_range=0.2, tie_word_embeddings=False),
        "gpt_neox": lambda: transformers.GPTNeoXConfig(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                                       rotary_pct=0.5, max_position_embeddings=64,
                                                       use_parallel_residual=True, **common),
    }


class LogitsOnly(torch.nn.Module):
    """input_ids -> logits, without a cache (what a plain export of the model gives)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids):
        return self.model(input_ids=input_ids, use_cache=False).logits


def greedy(model, prompt, new_tokens):
    """Greedy continuation by full recomputation of every prefix (no cache)."""
    ids = prompt.clone()
    with torch.no_grad():
        for _ in range(new_tokens):
            logits = model(input_ids=ids, use_cache=False).logits[:, -1, :]
            ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], dim=1)
    return ids[:, prompt.shape[1]:]


def write_tensor(path, array, name):
    tensor = numpy_helper.from_array(array, name)
    with open(path, "wb") as f:
        f.write(tensor.SerializeToString())


def strip_debug_info(model):
    """Drops the exporter's per-node stack traces and doc strings (most of a tiny model's bytes)."""
    graphs = [model.graph] + [f for f in model.functions]
    for graph in graphs:
        for node in graph.node:
            del node.metadata_props[:]
            node.doc_string = ""
    for value in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        del value.metadata_props[:]
    for tensor in model.graph.initializer:
        del tensor.metadata_props[:]
    return model


def export_one(family, make_config, attention, opset, out_dir):
    torch.manual_seed(1234)
    config = make_config()
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation=attention,
                                                          torch_dtype=torch.float32).eval()
    wrapper = LogitsOnly(model).eval()
    generator = torch.Generator().manual_seed(7)
    sample = torch.randint(3, VOCAB, (2, 12), generator=generator)
    folder = os.path.join(out_dir, f"{family}-{attention}-opset{opset}")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    batch, sequence = torch.export.Dim.DYNAMIC, torch.export.Dim.DYNAMIC
    with torch.no_grad():
        program = torch.onnx.export(wrapper, (sample,), dynamo=True, opset_version=opset,
                                    input_names=["input_ids"], output_names=["logits"],
                                    dynamic_shapes={"input_ids": {0: batch, 1: sequence}}, optimize=True)
    program.save(path, external_data=False)
    onnx_model = strip_debug_info(onnx.load(path))
    onnx.save(onnx_model, path)
    onnx.checker.check_model(onnx_model)
    with torch.no_grad():
        logits = wrapper(sample).numpy()
    data = os.path.join(folder, "test_data_set_0")
    os.makedirs(data, exist_ok=True)
    write_tensor(os.path.join(data, "input_0.pb"), sample.numpy(), onnx_model.graph.input[0].name)
    write_tensor(os.path.join(data, "output_0.pb"), logits, onnx_model.graph.output[0].name)
    prompt = torch.randint(3, VOCAB, (1, PROMPT_TOKENS), generator=generator)
    tokens = greedy(model, prompt, NEW_TOKENS)
    with open(os.path.join(folder, "generation.json"), "w") as f:
        json.dump({"prompt": prompt[0].tolist(), "greedy": tokens[0].tolist(),
                   "note": "greedy continuation by PyTorch, full recomputation of every prefix"}, f)
    ops = collections.Counter(f"{n.domain + '.' if n.domain else ''}{n.op_type}" for n in onnx_model.graph.node)
    functions = sorted({f"{f.domain}.{f.name}" for f in onnx_model.functions})
    runs = None
    try:
        import onnxruntime  # only to record whether plain ONNX Runtime runs the export

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: sample.numpy()})[0]
        runs = f"max |ort - torch| = {float(abs(got - logits).max()):.3g}"
    except ImportError:
        pass
    except Exception as e:  # noqa: BLE001 - recorded, not fatal
        runs = "onnxruntime failed: " + str(e).splitlines()[0][:300]
    return {"family": family, "attention": attention, "opset": opset, "status": "ok", "path": folder,
            "bytes": os.path.getsize(path), "nodes": len(onnx_model.graph.node), "ops": dict(sorted(ops.items())),
            "functions": functions, "onnxruntime": runs, "num_heads": getattr(config, "num_attention_heads", None),
            "kv_heads": getattr(config, "num_key_value_heads", None)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--families", default=",".join(configs()))
    parser.add_argument("--attentions", default="eager,sdpa")
    parser.add_argument("--opsets", default="18,23")
    args = parser.parse_args()
    makers = configs()
    entries = []
    for family in args.families.split(","):
        if family not in makers:
            sys.exit(f"unknown family '{family}' ({', '.join(makers)})")
        for attention in args.attentions.split(","):
            for opset in (int(o) for o in args.opsets.split(",")):
                name = f"{family}-{attention}-opset{opset}"
                try:
                    entry = export_one(family, makers[family], attention, opset, args.out)
                    print(f"{name}: ok, {entry['nodes']} nodes, {entry['bytes']} bytes; ort: {entry['onnxruntime']}",
                          flush=True)
                except Exception as e:  # noqa: BLE001 - recorded in the manifest
                    lines = traceback.format_exception_only(type(e), e)
                    entry = {"family": family, "attention": attention, "opset": opset, "status": "failed",
                             "error": "".join(lines).strip()[-2000:]}
                    print(f"{name}: FAILED {lines[-1].strip()[:300]}", flush=True)
                entries.append(entry)
    manifest = {"torch": torch.__version__, "transformers": transformers.__version__, "onnx": onnx.__version__,
                "exports": entries}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
