#!/usr/bin/env python3
"""The PyTorch peer of `crates/trainer/benches/epoch_cost.rs` (strategy `all`, no feature cache): one training epoch.

Hugging Face `transformers` BertModel (sdpa attention, no pooler) with the same classification head as ours (mean
pooling over real tokens, dropout, linear), trained on exactly the batches our bench ran (`--dump-batches` writes
them: token ids, labels, the epoch's batches in order, the settings). Same optimizer settings: AdamW (or Adam) with
the dump's learning rate for every parameter and its weight decay on weights but not on biases and LayerNorms,
libtorch's fused update (`fused=True`, as ours), constant rate, clipping if the dump sets it. `--precision bf16` runs
the forward pass under `torch.autocast("cpu", torch.bfloat16)` with f32 weights and optimizer state, as ours does.

The epoch's time is split as ours is: forward (batch tensors, forward pass, loss), backward, optimizer (clipping,
update, clearing gradients). No warm-up beyond what the epoch itself does, as for ours.

Usage: python hf_train_peer.py --batches dump.json --model data/models/all-MiniLM-L6-v2 --threads 2
                                [--precision f32|bf16]

Prints one JSON line (`bench`: "peer.training").
Needs torch and transformers (`cargo xtask bench --peer` sets up a venv with them).
"""
import argparse
import json
import platform
import sys
import time
import warnings


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--precision", choices=["f32", "bf16"], default="f32")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import torch
    import transformers
    from transformers import BertModel

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(args.batches, encoding="utf-8") as f:
        dump = json.load(f)
    examples, labels, batches = dump["examples"], dump["labels"], dump["batches"]
    if not batches:
        sys.exit(f"no batches in {args.batches}")
    if dump["pooling"] != "mean":
        sys.exit(f"the peer pools by mean only, the dump says {dump['pooling']}")

    model = BertModel.from_pretrained(
        args.model,
        add_pooling_layer=False,
        attn_implementation="sdpa",
        attention_probs_dropout_prob=dump["attention_dropout"],
        hidden_dropout_prob=dump["hidden_dropout"],
    )
    head = torch.nn.Linear(model.config.hidden_size, dump["classes"])
    torch.nn.init.normal_(head.weight, std=model.config.initializer_range)
    torch.nn.init.zeros_(head.bias)
    dropout = torch.nn.Dropout(dump["head_dropout"])
    model.train()
    head.train()

    named = list(model.named_parameters()) + [("classification_head." + n, p) for n, p in head.named_parameters()]
    no_decay = [p for n, p in named if n.endswith("bias") or "LayerNorm" in n]
    decay = [p for n, p in named if not (n.endswith("bias") or "LayerNorm" in n)]
    groups = [{"params": decay, "weight_decay": dump["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer_class = torch.optim.AdamW if dump["optimizer"] == "adamw" else torch.optim.Adam
    optimizer = optimizer_class(groups, lr=dump["learning_rate"], fused=True)
    parameters = [p for _, p in named]
    max_norm = dump.get("max_grad_norm")
    loss_fn = torch.nn.CrossEntropyLoss()
    pad_id = dump["pad_id"]
    autocast = args.precision == "bf16"

    forward = backward = step = 0.0
    losses = []
    started = time.perf_counter()
    for indices in batches:
        clock = time.perf_counter()
        longest = max(len(examples[i]) for i in indices)
        input_ids = torch.full((len(indices), longest), pad_id, dtype=torch.long)
        mask = torch.zeros((len(indices), longest), dtype=torch.long)
        for row, i in enumerate(indices):
            input_ids[row, : len(examples[i])] = torch.tensor(examples[i], dtype=torch.long)
            mask[row, : len(examples[i])] = 1
        target = torch.tensor([labels[i] for i in indices], dtype=torch.long)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            logits = head(dropout(pooled))
        loss = loss_fn(logits.float(), target)
        losses.append(loss.item())
        forward += time.perf_counter() - clock
        clock = time.perf_counter()
        loss.backward()
        backward += time.perf_counter() - clock
        clock = time.perf_counter()
        if max_norm is not None:
            torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += time.perf_counter() - clock
    seconds = time.perf_counter() - started

    print(
        json.dumps(
            {
                "bench": "peer.training",
                "impl": "pytorch",
                "precision": args.precision,
                "examples": sum(len(b) for b in batches),
                "steps": len(batches),
                "train_tokens": sum(len(examples[i]) for b in batches for i in b),
                "seconds": round(seconds, 6),
                "forward_seconds": round(forward, 6),
                "backward_seconds": round(backward, 6),
                "optimizer_seconds": round(step, 6),
                "mean_loss": sum(losses) / len(losses),
                "threads": torch.get_num_threads(),
                "versions": {
                    "python": platform.python_version(),
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
