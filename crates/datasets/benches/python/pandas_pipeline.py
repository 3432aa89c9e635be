#!/usr/bin/env python3
"""The notebook's data pipeline (pandas + Beautiful Soup), timed like benches/pipeline.rs.

Usage: python pandas_pipeline.py --step STEP [--runs N] [--classification FILE] [--ner FILE]

Steps (one per process, for the peak memory):
  read-imdb   pd.read_excel of the review file
  clean-imdb  the notebook's load_data_from_xlsx(file, "classification"): read_excel, dropna,
              clean_text on every review, label filter, list of dicts
  read-ner    pd.read_excel of the NER file
  group-ner   the notebook's load_data_from_xlsx(file, "ner"): read_excel, ffill, dropna,
              groupby sentence, tag check, list of dicts
Files default to BENCH_CLASSIFICATION / BENCH_NER, else ../shared/data/classification_dataset.xlsx
and ../shared/data/ner_dataset.xlsx relative to the workspace root.
Prints one JSON line: {"step", "impl": "pandas", "file", "runs", "seconds" (median),
"seconds_all", "peak_rss_mib" (ru_maxrss), "startup_rss_mib" (after imports), "counts", "check"}.
Needs pandas, openpyxl, beautifulsoup4.
"""
import argparse
import json
import os
import re
import resource
import statistics
import sys
import time
import warnings

import pandas as pd
from bs4 import BeautifulSoup

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))

VALID_TAGS = {
    "B-art", "B-eve", "B-geo", "B-gpe", "B-nat", "B-org", "B-per", "B-tim",
    "I-art", "I-eve", "I-geo", "I-gpe", "I-nat", "I-org", "I-per", "I-tim", "O",
}


def clean_text(text):
    """Verbatim from the notebook."""
    text = BeautifulSoup(text, "html.parser").get_text()
    text = re.sub(r"[^a-zA-Z0-9\s.,!?'-]", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    return text


def load_classification(path):
    """The notebook's load_data_from_xlsx(path, "classification")."""
    df = pd.read_excel(path)
    df = df.dropna(subset=["review", "sentiment"])
    df["review"] = df["review"].astype(str).apply(clean_text)
    df = df[df["sentiment"].isin({"positive", "negative"})]
    return [{"sentence": row["review"], "label": row["sentiment"]} for _, row in df.iterrows()]


def load_ner(path):
    """The notebook's load_data_from_xlsx(path, "ner")."""
    df = pd.read_excel(path)
    df["Sentence #"] = df["Sentence #"].ffill()
    df = df.dropna(subset=["Word", "Tag"])
    data = []
    for _, group in df.groupby("Sentence #"):
        words = group["Word"].astype(str).tolist()
        tags = group["Tag"].astype(str).tolist()
        if all(tag in VALID_TAGS for tag in tags):
            data.append({"words": words, "labels": tags})
    return data


def rss_mib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def run_step(step, args):
    if step == "read-imdb":
        df = pd.read_excel(args.classification)
        counts = df["sentiment"].value_counts()
        return {"reviews": len(df), "negative": int(counts.get("negative", 0)), "positive": int(counts.get("positive", 0))}
    if step == "clean-imdb":
        data = load_classification(args.classification)
        neg = sum(1 for d in data if d["label"] == "negative")
        return {"reviews": len(data), "negative": neg, "positive": len(data) - neg}
    if step == "read-ner":
        df = pd.read_excel(args.ner)
        return {"tokens": len(df), "sentences": int(df["Sentence #"].notna().sum())}
    if step == "group-ner":
        data = load_ner(args.ner)
        return {"sentences": len(data), "tokens": sum(len(d["words"]) for d in data)}
    raise SystemExit(f"unknown step {step}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--step", required=True)
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "1")))
    parser.add_argument("--classification", default=os.environ.get(
        "BENCH_CLASSIFICATION", os.path.join(ROOT, "..", "shared", "data", "classification_dataset.xlsx")))
    parser.add_argument("--ner", default=os.environ.get(
        "BENCH_NER", os.path.join(ROOT, "..", "shared", "data", "ner_dataset.xlsx")))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    startup = rss_mib("VmRSS:")
    times = []
    counts = None
    for _ in range(max(1, args.runs)):
        start = time.perf_counter()
        counts = run_step(args.step, args)
        times.append(time.perf_counter() - start)
    if "imdb" in args.step:
        check = "ok" if counts in ({"reviews": 50000, "negative": 25000, "positive": 25000},) else "MISMATCH"
    else:
        # pandas drops the 11 tokens whose Word reads as NaN (`None` x10, `#NAME?`).
        check = "ok" if counts["sentences"] == 47959 else "MISMATCH"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({
        "step": args.step,
        "impl": "pandas",
        "file": args.classification if "imdb" in args.step else args.ner,
        "runs": len(times),
        "seconds": round(statistics.median(times), 3),
        "seconds_all": [round(t, 3) for t in times],
        "peak_rss_mib": round(peak, 3),
        "startup_rss_mib": round(startup, 3),
        "counts": counts,
        "check": check,
    }))
    return 0 if check == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
