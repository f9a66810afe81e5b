"""The scripts that fit the models rag ships (the reader, its calibration, the answer model) and the data they
read. Each script runs from the repository root (`.venv/bin/python tools/train_reader.py ...`) and its parts import
as `tools.x`; rag and ui never import tools (an import-linter contract in pyproject.toml).

The reader's fits share their parts: `reader_windows` (paragraphs and the windows drawn from them, alone or grouped),
`reader_encoding` (windows as token rows with the answer's token span, batches), `reader_scoring` (best span, shared
loss, held-out figures) and `reader_export` (the int8 ONNX reader and its manifest), used by `train_reader` and by
`reader_pass`, whose pass keeps its data in `pass_data`, its order in `pass_order` and its state folder in
`pass_state`.
"""
