"""`rag bench`: build throughput, query latency, memory, index size, incremental rebuild and cold start, measured.

Every configuration given to `--compare` runs in the same process, one after the other, and the report gives
each figure as a ratio to the first configuration: on a shared machine absolute timings drift from one run to the
next, ratios taken minutes apart much less. `--synthetic N` measures the FAISS store alone on N random unit
vectors (recall@10 against exact search, query latency, vector memory).

Stores compare the same way: `onnx-int8/milvus` is Milvus Lite, `onnx-int8/milvus@http://host:19530` a Milvus
server; with `--shared-embeddings` the articles are embedded once, before any configuration, so that the build
times compare what the stores do rather than the model's share, which is the same for all of them.

`tutorial` in `--compare` is the baseline a user gets by following a tutorial: the same articles read by
`load_documents`, cut by langchain's RecursiveCharacterTextSplitter into 200-token chunks (the model's tokenizer,
no overlap), encoded by a plain PyTorch SentenceTransformer, added to a faiss.IndexFlatIP and written to disk. It
has build figures only (it has no answer path, no incremental rebuild), and the report says how many times faster
each other configuration's full build is ("build vs tutorial").

`--scale 2225,20000,100000` builds synthetic collections of that many articles, the source's articles repeated
with deterministic changes (copy 0 is the article itself; later copies have their paragraphs and sentences
reordered, a few words swapped and the copy number in the title), each in a fresh process so that its peak memory
is its own, and reports build time, peak RSS, index size and warm query latency per size, and how they grow.

Example:
    rag bench --compare torch,onnx,onnx-int8 --out bench.json
    rag bench --compare onnx-int8,onnx-int8/milvus,onnx-int8/milvus@http://127.0.0.1:19530 --shared-embeddings
    rag bench --compare tutorial,onnx-int8 --no-incremental
    rag bench --synthetic 1000000
    rag bench --scale 2225,20000,100000 --out scale.json

One module per thing measured: `builds` (a configuration's build, embedding throughput, incremental rebuild),
`latency` (query latency, cold start), `memory` (RSS, folder sizes), `tutorial` (the baseline), `synthetic` (the
FAISS store alone), `collections` and `scale` (--scale), with `configs` (what is run), `report` (ratios and tables),
`run` (`run_bench`, all of them in one report) and `commands` (the command line).
"""

from rag.evaluation.bench.commands import register

__all__ = ["register"]
