#!/usr/bin/env python3
"""The Python peer of `crates/encoder/benches/throughput.rs --step encode --method sorted`.

Hugging Face `transformers` BertModel (sdpa attention, no pooler) under `torch.inference_mode()`, on exactly the
texts the Rust side wrote (`--step texts`), batched the same way: every text tokenized once (truncated at
`--max-length`), sorted by token count (longest first, stable), batches padded to their longest text, mean pooling
over real tokens. One warm-up (the two longest batches), then `--reps` timed passes; tokenization is inside the
timed pass, as in `SentenceEncoder::encode`.

Usage: python hf_peer.py --texts texts.json --corpus imdb|gmb --max-length 256 --batch 32 --threads 2
                          --model data/models/all-MiniLM-L6-v2 [--reps 3] [--limit N]

Prints one JSON line with the fields of the Rust bench (`impl`: "hf").
Needs torch and transformers (`cargo xtask bench --peer` sets up a venv with them).
"""
import argparse
import json
import platform
import statistics
import sys
import time
import warnings


def main():
    parser = argparse.ArgumentParser()
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

    def run_pass(selection):
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
                hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
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
    run_pass([texts[i] for i in longest_first[: 2 * args.batch]])

    times = []
    shapes = None
    for _ in range(max(1, args.reps)):
        start = time.perf_counter()
        _, shapes = run_pass(texts)
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
        "impl": "hf",
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
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "model": args.model,
    }))


if __name__ == "__main__":
    main()
