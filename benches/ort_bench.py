"""onnxruntime side of doorman's benchmark, driven by benches/bench.rs.

Reads one JSON request per line on stdin and answers one JSON line on
stdout, so that the Rust side can time tract and onnxruntime on the same
network, side by side, in one run. A request:

  {"model": PATH, "input": NPY, "outputs": [NPY...], "min_reps": N,
   "min_s": SECONDS}

`input` is the tensor tract was fed; `outputs` are tract's outputs, in the
graph's output order, to compare with onnxruntime's. The answer:

  {"median_ms": ..., "reps": N, "max_abs_diff": ...}  or  {"error": "..."}

Sessions run on one thread (intra_op_num_threads = 1, sequential), the
setting that compares with doorman's single-threaded tract plans.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

WARMUP_RUNS = 3


def session(path: str) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def answer(req: dict) -> dict:
    sess = session(req["model"])
    x = np.load(req["input"])
    feed = {sess.get_inputs()[0].name: x}
    for _ in range(WARMUP_RUNS):
        outs = sess.run(None, feed)
    times = []
    started = time.perf_counter()
    while len(times) < req["min_reps"] or time.perf_counter() - started < req["min_s"]:
        t = time.perf_counter()
        sess.run(None, feed)
        times.append(time.perf_counter() - t)
    diff = 0.0
    for mine, theirs in zip(outs, req.get("outputs", [])):
        t = np.load(theirs)
        if t.size != mine.size:
            return {"error": f"output sizes differ: tract {t.shape}, onnxruntime {mine.shape}"}
        diff = max(diff, float(np.max(np.abs(mine.reshape(-1) - t.reshape(-1)))))
    return {
        "median_ms": statistics.median(times) * 1e3,
        "reps": len(times),
        "max_abs_diff": diff,
    }


def main() -> int:
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = answer(json.loads(line))
        except Exception as e:  # one bad model must not end the bench
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
