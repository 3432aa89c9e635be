#!/usr/bin/env python3
"""Reference output of the notebook's `clean_text` over the 50,000 IMDB reviews.

Runs the notebook's function (BeautifulSoup html.parser `get_text()`, then two `re.sub`) on
every review of imdb_50k.csv.gz and writes one cleaned text per line (the cleaned texts hold no
newline), in file order. The Rust side (`cargo run --release -p datasets --example clean_compare`)
compares its own `clean_text` against this file.

Usage: python clean_reference.py [--get-text] [IMDB_CSV_GZ_OR_CSV] [OUT_TXT]
With --get-text it writes the JSON-encoded `get_text()` of each review instead (one a line), to check
the HTML text extraction alone (`clean_compare --html`).
Defaults: /work/shared/data/imdb_50k.csv.gz and /tmp/imdb_clean_reference.txt
Needs: beautifulsoup4 (pandas is not needed: the CSV is read with the csv module, newline="").
"""
import csv
import gzip
import json
import re
import sys

from bs4 import BeautifulSoup
from bs4.exceptions import ParserRejectedMarkup

REJECTED = "!!REJECTED!!"


def clean_text(text):
    """Cleans text by removing HTML tags and special characters (verbatim from the notebook)."""
    text = BeautifulSoup(text, "html.parser").get_text()
    text = re.sub(r"[^a-zA-Z0-9\s.,!?'-]", "", text)  # Remove unwanted characters
    text = re.sub(r"\s+", " ", text).strip()  # Normalize spaces
    return text


def main():
    args = sys.argv[1:]
    get_text = "--get-text" in args
    args = [a for a in args if a != "--get-text"]
    src = args[0] if len(args) > 0 else "/work/shared/data/imdb_50k.csv.gz"
    out = args[1] if len(args) > 1 else "/tmp/imdb_clean_reference.txt"
    csv.field_size_limit(1 << 30)
    opener = gzip.open if src.endswith(".gz") else open
    with opener(src, "rt", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        reviews = [row["review"] for row in reader]
    import warnings

    warnings.filterwarnings("ignore")  # MarkupResemblesLocatorWarning on short reviews
    with open(out, "w", encoding="utf-8", newline="\n") as f:
        for review in reviews:
            try:
                if get_text:
                    cleaned = json.dumps(BeautifulSoup(review, "html.parser").get_text())
                else:
                    cleaned = clean_text(review)
            except ParserRejectedMarkup:
                # The notebook would stop here; the Rust side cleans such text without HTML parsing.
                cleaned = REJECTED
            assert "\n" not in cleaned
            f.write(cleaned)
            f.write("\n")
    print(f"wrote {len(reviews)} cleaned reviews to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
