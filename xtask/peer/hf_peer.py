#!/usr/bin/env python3
"""The Python peers of `crates/encoder/benches/throughput --step encode --method sorted`.

`--runtime torch` (impl "hf"): Hugging Face `transformers` BertModel (sdpa attention, no pooler) under
`torch.inference_mode()`, fp32. `--runtime torch-bf16` (impl "hf-bf16"): the same under
`torch.autocast("cpu", torch.bfloat16)`. `--runtime onnxruntime` (impl "ort"): the same model exported to ONNX
(TorchScript exporter, opset 17) and rewritten by ONNX Runtime's BERT optimizer (`onnxruntime.transformers.optimizer`,
fused attention, SkipLayerNorm, BiasGelu, EmbedLayerNorm), fp32, run by ONNX Runtime's CPU provider with
`--threads` intra-op threads; its pooled embeddings are checked against the torch model's on the first batch.

Every runtime reads exactly the texts the Rust side wrote (`--step texts`), batched the same way: every text tokenized once (truncated at
`--max-length`), sorted by token count (longest first, stable), batches padded to their longest text, mean pooling
over real tokens. One warm-up (the two longest batches), then `--reps` timed passes; tokenization is inside the
timed pass, as in `SentenceEncoder::encode`.

Usage: python hf_peer.py [--runtime torch|torch-bf16|onnxruntime] --texts texts.json --corpus imdb|gmb --max-length 256 --batch 32 --threads 2
                          --model data/models/all-MiniLM-L6-v2 [--reps 3] [--limit N]

Prints one JSON line with the fields of the Rust bench.
Needs torch and transformers, and onnxruntime and onnx for `onnxruntime` (`cargo xtask bench --peer` sets up a venv
with them).
"""
import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings

IMPL = {"torch": "hf", "torch-bf16": "hf-bf16", "onnxruntime": "ort"}


def onnx_session(model_dir, config, threads, workdir):
    """Exports the model (eager attention: transformers' sdpa path drops the mask when tracing an unpadded
    example, which would bake "no padding" into the graph) to ONNX, applies ONNX Runtime's BERT optimizer, opens a CPU session: (forward, facts)."""
    import numpy as np
    import onnxruntime
    import torch
    from onnxruntime.transformers.optimizer import optimize_model
    from transformers import BertModel

    model = BertModel.from_pretrained(model_dir, add_pooling_layer=False, attn_implementation="eager").eval()

    class LastHidden(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    input_ids = torch.full((2, 8), 1000, dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    mask[1, 5:] = 0
    example = (input_ids, mask, torch.zeros_like(input_ids))
    exported = os.path.join(workdir, "model.onnx")
    optimized = os.path.join(workdir, "model.opt.onnx")
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        torch.onnx.export(
            LastHidden(model), example, exported, input_names=names, output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "seq"} for n in names + ["last_hidden_state"]},
            opset_version=17, dynamo=False,
        )
        rewritten = optimize_model(
            exported, model_type="bert", num_heads=config.num_attention_heads, hidden_size=config.hidden_size
        )
        fused = {k: v for k, v in rewritten.get_fused_operator_statistics().items() if v}
        rewritten.save_model_to_file(optimized)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(optimized, options, providers=["CPUExecutionProvider"])
    prepare_seconds = time.perf_counter() - start

    def forward(input_ids, attention_mask):
        feed = {
            "input_ids": input_ids.numpy(),
            "attention_mask": attention_mask.numpy(),
            "token_type_ids": np.zeros_like(input_ids.numpy()),
        }
        return torch.from_numpy(session.run(None, feed)[0])

    facts = {"fused_operators": fused, "prepare_seconds": round(prepare_seconds, 2),
             "onnxruntime": onnxruntime.__version__}
    return forward, facts


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runtime", default="torch", choices=sorted(IMPL))
    parser.add_argument("--texts", required=True)
    parser.add_argument("--corpus", required=True, choices=["imdb", "gmb"])
    parser.add_argument("--max-length", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import torch
    import transformers
    from transformers import BertModel, BertTokenizerFast

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    with open(args.texts, encoding="utf-8") as f:
        texts = json.load(f)[args.corpus]
    if args.limit is not None:
        texts = texts[: args.limit]
    if not texts:
        sys.exit(f"no {args.corpus} texts in {args.texts}")

    tokenizer = BertTokenizerFast.from_pretrained(args.model)
    model = BertModel.from_pretrained(args.model, add_pooling_layer=False, attn_implementation="sdpa").eval()
    config = model.config
    pad_id = tokenizer.pad_token_id

    # `run_pass` runs these under `torch.inference_mode()`.
    def torch_forward(input_ids, attention_mask):
        return model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def bf16_forward(input_ids, attention_mask):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state.float()

    facts = {}
    if args.runtime == "onnxruntime":
        # Kept until the process exits: the session reads its model file.
        workdir = tempfile.TemporaryDirectory(prefix="bertmt-ort-")
        forward, facts = onnx_session(args.model, config, args.threads, workdir.name)
    else:
        forward = {"torch": torch_forward, "torch-bf16": bf16_forward}[args.runtime]

    def run_pass(selection, forward):
        """Tokenize, sort by length, pad per batch, forward, mean-pool; returns (pooled rows, batch lengths)."""
        ids = tokenizer(selection, truncation=True, max_length=args.max_length)["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        pooled = [None] * len(ids)
        shapes = []
        with torch.inference_mode():
            for start in range(0, len(order), args.batch):
                indices = order[start : start + args.batch]
                longest = len(ids[indices[0]])
                input_ids = torch.full((len(indices), longest), pad_id, dtype=torch.long)
                mask = torch.zeros((len(indices), longest), dtype=torch.long)
                for row, i in enumerate(indices):
                    input_ids[row, : len(ids[i])] = torch.tensor(ids[i], dtype=torch.long)
                    mask[row, : len(ids[i])] = 1
                hidden = forward(input_ids, mask)
                weights = mask.unsqueeze(-1).to(hidden.dtype)
                vectors = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
                for row, i in enumerate(indices):
                    pooled[i] = vectors[row]
                shapes.append(([len(ids[i]) for i in indices], longest))
        return pooled, shapes

    # Warm-up: the two longest batches.
    start = time.perf_counter()
    lengths = [len(x) for x in tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]]
    tokenize_seconds = time.perf_counter() - start
    longest_first = sorted(range(len(texts)), key=lambda i: -lengths[i])
    warmup = [texts[i] for i in longest_first[: 2 * args.batch]]
    pooled, _ = run_pass(warmup, forward)
    if args.runtime != "torch":
        # Agreement with the fp32 torch model on the warm-up texts.
        reference, _ = run_pass(warmup, torch_forward)
        a, b = torch.stack(pooled).float(), torch.stack(reference).float()
        facts["max_abs_diff_to_fp32"] = float((a - b).abs().max())
        facts["min_cosine_to_fp32"] = float(torch.nn.functional.cosine_similarity(a, b, dim=1).min())

    times = []
    shapes = None
    for _ in range(max(1, args.reps)):
        start = time.perf_counter()
        _, shapes = run_pass(texts, forward)
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)

    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    real_tokens = padded_tokens = 0
    flops_real = flops_computed = 0.0
    for batch_lengths, longest in shapes:
        per_token = layers * (2 * (4 * h * h + 2 * h * i) + 4 * longest * h)
        real, padded = sum(batch_lengths), len(batch_lengths) * longest
        real_tokens += real
        padded_tokens += padded
        flops_real += per_token * real
        flops_computed += per_token * padded

    print(json.dumps({
        "bench": "encoder.encode",
        "impl": IMPL[args.runtime],
        "runtime": args.runtime,
        "corpus": args.corpus,
        "method": "sorted",
        "max_length": args.max_length,
        "batch": args.batch,
        "texts": len(texts),
        "truncated_texts": sum(1 for x in tokenizer(texts)["input_ids"] if len(x) > args.max_length),
        "threads": torch.get_num_threads(),
        "reps": len(times),
        "seconds": round(seconds, 4),
        "seconds_all": [round(t, 4) for t in times],
        "tokenize_seconds": round(tokenize_seconds, 4),
        "sentences_per_s": round(len(texts) / seconds, 3),
        "real_tokens": real_tokens,
        "padded_tokens": padded_tokens,
        "batches": len(shapes),
        "real_tokens_per_s": round(real_tokens / seconds, 1),
        "padding_overhead": round(padded_tokens / real_tokens - 1, 5),
        "flops_real": flops_real,
        "flops_computed": flops_computed,
        "gflops_real": round(flops_real / seconds / 1e9, 3),
        "gflops_computed": round(flops_computed / seconds / 1e9, 3),
        "attn_implementation": getattr(config, "_attn_implementation", None),
        **facts,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "model": args.model,
    }))


if __name__ == "__main__":
    main()
