#!/usr/bin/env python3
"""Golden sets for the shipped code model, made on the GPU host (PyTorch) by an implementation independent of OrtSparse's op:
a Llama forward written here from the checkpoint's weights, and each decode method's key selection written from the rules in
docs/ops.md ("Methods", "Selection rules shared by the sparse methods").

    python3 models/make_code_model_golden.py CHECKPOINT TOKENS_FILE OUT_DIR [--length 1280] [--decode 4]

CHECKPOINT is train_code_model.py's checkpoint.pt (the weights the export holds; rounded to float16 as shipped), TOKENS_FILE a
held-out token id file (its first --length ids are used). OUT_DIR gets cases.json and, per method, test_data_set_0 with
input_0.pb (input_ids [1, N]) and output_0.pb (logits [1, K, V] at the last K positions). The first N - K tokens are
prefilled (exact, but hash attends its buckets there), each of the last K tokens is one decode step with the method.
Dense is also checked against transformers' own LlamaForCausalLM (the export's source) before anything is written.
"""
import argparse
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_code_model import config  # noqa: E402  (the model's shape; the forward below is written independently)

# Patch arguments of each golden set; the defaults of docs/ops.md otherwise (budget 1/16, sink 4, window 64, dense_below 1024).
SETS = {
    "dense": ["--method", "dense"],
    "topk": ["--method", "topk"],
    "streaming": ["--method", "streaming"],
    "quest": ["--method", "quest"],
    "loki": ["--method", "loki"],
    "saap": ["--method", "saap"],
    "hash": ["--method", "hash"],
}
SINK, WINDOW, DENSE_BELOW, BUDGET, PAGE = 4, 64, 1024, 0.0625, 16


def load_weights(checkpoint):
    state = torch.load(checkpoint, map_location="cpu")["model"]
    # The shipped model holds float16 weights; compute in float64 with exactly those values.
    return {name: tensor.half().double() for name, tensor in state.items()}


def load_calibration(path):
    import onnx
    from onnx import numpy_helper
    model = onnx.load(path)
    return {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()).double() for t in model.graph.initializer}


def rms_norm(x, weight, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rotary_tables(length, head_dim, theta):
    """[T, D/2] cos and sin, computed in float32 as the exported graph computes them."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    angles = torch.arange(length, dtype=torch.int64).float()[:, None] * inv_freq[None, :]
    return torch.cos(angles).double(), torch.sin(angles).double()


def rotate(x, cos, sin):
    """Rotate-half rotary of x [H, T, D] with tables [T, D/2]."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Selection:
    """The keys one decode query attends, per KV head, for one method (docs/ops.md)."""

    def __init__(self, method, calibration, layer):
        self.method = method
        self.calibration = calibration
        self.layer = layer

    def data(self, name):
        return self.calibration[f"layers.{self.layer}.{name}"]

    def keys(self, g, heads, q_post, k_post, q_pre, k_pre, scale, prefill=False):
        """Positions attended by KV head g for queries q_* [G, D] (its group's heads) over keys k_* [n, D]: a decode
        step's, or a prefill row's (exact, but for hash: every middle key sharing a bucket, no budget)."""
        n = k_post.shape[0]
        if self.method == "dense" or n < DENSE_BELOW or (prefill and self.method != "hash"):
            return list(range(n))
        middle = list(range(SINK, max(SINK, n - WINDOW)))
        kept = set(range(min(SINK, n))) | set(range(max(0, n - WINDOW), n))
        k = len(middle) if prefill else min(math.ceil(BUDGET * n), len(middle))
        picked = getattr(self, self.method)(g, heads, q_post, k_post, q_pre, k_pre, scale, middle, k)
        return sorted(kept | set(picked))

    @staticmethod
    def top(scores, middle, k):
        """The k middle positions of highest score; ties to the earlier position."""
        order = sorted(middle, key=lambda j: (-scores[j].item(), j))
        return order[:k]

    def topk(self, g, heads, q_post, k_post, q_pre, k_pre, scale, middle, k):
        scores = (scale * q_post @ k_post.T).max(0).values
        return self.top(scores, middle, k)

    def streaming(self, *args):
        return []

    def quest(self, g, heads, q_post, k_post, q_pre, k_pre, scale, middle, k):
        n = k_post.shape[0]
        pages = (n + PAGE - 1) // PAGE
        bounds = []
        for p in range(pages):
            block = k_post[p * PAGE:(p + 1) * PAGE]
            low, high = block.min(0).values, block.max(0).values
            bounds.append((scale * torch.maximum(q_post * low, q_post * high).sum(-1)).max().item())
        middle_set = set(middle)
        chosen, count = [], 0
        for p in sorted(range(pages), key=lambda p: (-bounds[p], p)):
            if count >= k:
                break
            inside = [j for j in range(p * PAGE, min(n, (p + 1) * PAGE)) if j in middle_set]
            if inside:
                chosen.extend(inside)
                count += len(inside)
        return chosen

    def loki(self, g, heads, q_post, k_post, q_pre, k_pre, scale, middle, k):
        basis = self.data("loki.basis")[g]  # [D, D], row i = i-th component
        rank = basis.shape[0] // 4
        projection = basis[:rank]
        scores = (scale * (q_pre @ projection.T) @ (k_pre @ projection.T).T).max(0).values
        return self.top(scores, middle, k)

    def saap(self, g, heads, q_post, k_post, q_pre, k_pre, scale, middle, k):
        centroids = self.data("saap.centroids")[g]  # [C, D]
        clusters = (k_pre @ centroids.T).argmax(-1)  # largest cosine: centroids are unit, |k| is common to a row
        w1, b1, w2 = self.data("saap.w1"), self.data("saap.b1"), self.data("saap.w2")
        probabilities = []
        for row, h in enumerate(heads):
            hidden = torch.relu(q_pre[row] @ w1[h] + b1[h])
            z = hidden @ w2[h][:-1] + w2[h][-1]
            probabilities.append(torch.softmax(z, -1))
        rank = torch.stack(probabilities).max(0).values
        members = {}
        for j in middle:
            members.setdefault(int(clusters[j]), []).append(j)
        chosen, count = [], 0
        for c in sorted(range(centroids.shape[0]), key=lambda c: (-rank[c].item(), c)):
            if count >= k:
                break
            chosen.extend(members.get(c, []))
            count += len(members.get(c, []))
        return chosen

    def hash(self, g, heads, q_post, k_post, q_pre, k_pre, scale, middle, k):
        projections = self.data("hash.projections")[g]  # [R, D, NB/2]

        def buckets(x):  # x [.., D] -> [.., R]
            out = []
            for r in range(projections.shape[0]):
                xr = x @ projections[r]
                out.append(torch.cat([xr, -xr], -1).argmax(-1))
            return torch.stack(out, -1)

        key_buckets, query_buckets = buckets(k_pre), buckets(q_pre)  # [n, R], [G, R]
        matches = {}
        for j in middle:
            rounds = sum(1 for r in range(projections.shape[0]) if (query_buckets[:, r] == key_buckets[j, r]).any())
            if rounds > 0:
                matches[j] = rounds
        order = sorted(matches, key=lambda j: (-matches[j], -j))
        return order[:k]


class Reference:
    """Llama forward (float64) with every attention site's decode steps going through a Selection."""

    def __init__(self, weights, cfg, calibration):
        self.w, self.cfg, self.calibration = weights, cfg, calibration

    def logits(self, ids, method, decode):
        cfg, w = self.cfg, self.w
        heads, kv_heads, head_dim = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        group = heads // kv_heads
        n = len(ids)
        theta = cfg.rope_parameters["rope_theta"] if hasattr(cfg, "rope_parameters") else cfg.rope_theta
        cos, sin = rotary_tables(n, head_dim, theta)
        x = w["model.embed_tokens.weight"][torch.tensor(ids)]
        scale = 1.0 / math.sqrt(head_dim)
        for layer in range(cfg.num_hidden_layers):
            p = f"model.layers.{layer}."
            h = rms_norm(x, w[p + "input_layernorm.weight"], cfg.rms_norm_eps)
            q_pre = (h @ w[p + "self_attn.q_proj.weight"].T).view(n, heads, head_dim).transpose(0, 1)
            k_pre = (h @ w[p + "self_attn.k_proj.weight"].T).view(n, kv_heads, head_dim).transpose(0, 1)
            v = (h @ w[p + "self_attn.v_proj.weight"].T).view(n, kv_heads, head_dim).transpose(0, 1)
            q_post, k_post = rotate(q_pre, cos, sin), rotate(k_pre, cos, sin)
            selection = Selection(method, self.calibration, layer)
            out = torch.zeros(heads, n, head_dim, dtype=torch.float64)
            for t in range(n):
                for g in range(kv_heads):
                    group_heads = list(range(g * group, (g + 1) * group))
                    keys = selection.keys(g, group_heads, q_post[group_heads, t], k_post[g, :t + 1], q_pre[group_heads, t],
                                          k_pre[g, :t + 1], scale, prefill=t < n - decode)
                    index = torch.tensor(keys)
                    scores = scale * q_post[group_heads, t] @ k_post[g, index].T
                    out[group_heads, t] = torch.softmax(scores, -1) @ v[g, index]
            x = x + out.transpose(0, 1).reshape(n, heads * head_dim) @ w[p + "self_attn.o_proj.weight"].T
            h = rms_norm(x, w[p + "post_attention_layernorm.weight"], cfg.rms_norm_eps)
            gate = h @ w[p + "mlp.gate_proj.weight"].T
            x = x + (torch.nn.functional.silu(gate) * (h @ w[p + "mlp.up_proj.weight"].T)) @ w[p + "mlp.down_proj.weight"].T
        x = rms_norm(x, w["model.norm.weight"], cfg.rms_norm_eps)
        return x[n - decode:] @ w["model.embed_tokens.weight"].T  # tied output projection


def save_set(folder, ids, logits):
    from onnx import numpy_helper
    os.makedirs(folder, exist_ok=True)
    tensors = [(numpy_helper.from_array(torch.tensor([ids], dtype=torch.int64).numpy(), "input_ids"), "input_0.pb"),
               (numpy_helper.from_array(logits[None].float().numpy(), "logits"), "output_0.pb")]
    for tensor, name in tensors:
        with open(os.path.join(folder, name + ".tmp"), "wb") as f:
            f.write(tensor.SerializeToString())
        os.replace(os.path.join(folder, name + ".tmp"), os.path.join(folder, name))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("tokens")
    parser.add_argument("out")
    parser.add_argument("--calibration", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "code-model", "calibration.onnx"))
    parser.add_argument("--length", type=int, default=1280)
    parser.add_argument("--decode", type=int, default=4)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    ids = [int(t) for t in open(args.tokens).read().split()][:args.length]
    if len(ids) < args.length:
        raise SystemExit(f"{args.tokens} holds {len(ids)} tokens, fewer than --length {args.length}")
    cfg = config("eager")
    weights = load_weights(args.checkpoint)
    reference = Reference(weights, cfg, load_calibration(args.calibration))

    # The forward above against transformers' own model with the same weights: the export's source.
    import transformers
    hf = transformers.LlamaForCausalLM(cfg).double().eval()
    hf.load_state_dict({name: weights[name] for name in hf.state_dict()})
    expected = hf(input_ids=torch.tensor([ids])).logits[0, -args.decode:]
    dense = reference.logits(ids, "dense", args.decode)
    difference = (dense - expected).abs().max().item()
    print(f"reference forward vs transformers: max abs difference {difference:.2e}", flush=True)
    if difference > 1e-4:  # transformers' eager attention takes its softmax in float32 even for a float64 model
        raise SystemExit("the reference forward disagrees with transformers")

    for name, patch in SETS.items():
        method = patch[1]
        logits = expected if method == "dense" else reference.logits(ids, method, args.decode)
        change = (logits - expected).abs().max().item()
        top1 = (logits.argmax(-1) == expected.argmax(-1)).float().mean().item()
        print(f"{name}: max abs change vs dense {change:.3e}, top-1 agreement {top1:.2f}", flush=True)
        if method != "dense" and change == 0:
            raise SystemExit(f"{name} selects every key: the golden set would not test the method")
        save_set(os.path.join(args.out, name, "test_data_set_0"), ids, logits)
    cases = {"model": "models/code-model/model.onnx", "calibration": "models/code-model/calibration.onnx",
             "atol": 1e-3, "rtol": 1e-3, "length": args.length, "decode": args.decode,
             "made_by": "models/make_code_model_golden.py", "sets": SETS}
    with open(os.path.join(args.out, "cases.json"), "w") as f:
        json.dump(cases, f, indent=1)
    print(f"wrote {len(SETS)} golden sets to {args.out}", flush=True)


if __name__ == "__main__":
    main()
