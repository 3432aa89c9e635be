"""The official `openai` Python client against `bertmt serve`'s /v1/embeddings, compared with sentence-transformers.

    bertmt serve --model data/models/all-MiniLM-L6-v2 --port 8089 [--precision f32] &
    python docs/openai_client_check.py [--base-url http://127.0.0.1:8089/v1] [--model-dir data/models/all-MiniLM-L6-v2]

Needs `pip install openai sentence-transformers`. The client asks for base64 vectors unless told otherwise (it did
in 3.63.0), so this exercises both encodings.
"""
import argparse
import math

import openai
from openai import OpenAI
from sentence_transformers import SentenceTransformer

parser = argparse.ArgumentParser()
parser.add_argument("--base-url", default="http://127.0.0.1:8089/v1")
parser.add_argument("--model-dir", default="data/models/all-MiniLM-L6-v2")
args = parser.parse_args()

client = OpenAI(base_url=args.base_url, api_key="unused")
texts = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby."]
single = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts[0])
many = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
floats = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts, encoding_format="float")
reference = SentenceTransformer(args.model_dir, device="cpu").encode(texts)


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


print(f"openai {openai.__version__}: model {many.model}, {len(many.data)} vectors, indices "
      f"{[d.index for d in many.data]}, dimension {len(many.data[0].embedding)}, usage {many.usage}")
print("one input == the first of three:",
      max(abs(a - b) for a, b in zip(single.data[0].embedding, many.data[0].embedding)) == 0.0)
print("base64 (default) == float:", all(
    max(abs(a - b) for a, b in zip(x.embedding, y.embedding)) == 0.0 for x, y in zip(many.data, floats.data)))
print("norms:", [round(math.sqrt(sum(x * x for x in d.embedding)), 6) for d in many.data])
print("cosine to sentence-transformers:", [round(float(cosine(d.embedding, r)), 6) for d, r in zip(many.data, reference)])
