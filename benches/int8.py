"""Quantized variants of the embedder, for the int8 benchmark.

Writes one ONNX file per quantization recipe into DIR (the bench puts it
in $CACHE/bench/int8). Calibration uses the 16 reference chips that
models/fetch writes from models/chips.py recipes (synthetic chips and
central squares of the demo photos), never the shared test photos, so
every run calibrates on the same bytes.

It also writes OUT_DIR/repro/: the smallest case of tract's int8 speed,
one 3x3 convolution (64 to 64 channels, on 1x64x36x36, the embedder's
second stage) as float32 and as the same QOperator quantization.

Usage: int8.py FLOAT_ONNX CHIPS_DIR OUT_DIR
Prints one line per variant: name, path, size in bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

# dlib's input normalisation (models/manifest.toml [embedder]).
MEAN = np.array([122.782, 117.001, 104.298], dtype=np.float32)
SCALE = np.float32(0.00390625)
SIZE = 150


class Chips(CalibrationDataReader):
    def __init__(self, chips_dir: Path, input_name: str):
        files = sorted(chips_dir.glob("chip-*.rgb"))
        if not files:
            raise SystemExit(f"int8.py: no chip-*.rgb in {chips_dir}: run models/fetch")
        self.items = []
        for f in files:
            rgb = np.frombuffer(f.read_bytes(), dtype=np.uint8).reshape(SIZE, SIZE, 3)
            x = ((rgb.astype(np.float32) - MEAN) * SCALE).transpose(2, 0, 1)[None]
            self.items.append({input_name: np.ascontiguousarray(x)})
        self.it = iter(self.items)

    def get_next(self):
        return next(self.it, None)


# name -> (format, activation type, weight type, extra options). Only Conv
# and MatMul are quantized: the ops tract has integer kernels for.
STATIC = {
    # QOperator: QLinearConv / QLinearMatMul with QuantizeLinear and
    # DequantizeLinear around them; per-channel symmetric int8 weights.
    "qop-s8s8-sym": (QuantFormat.QOperator, QuantType.QInt8, QuantType.QInt8,
                     {"ActivationSymmetric": True, "WeightSymmetric": True}),
    "qop-u8s8": (QuantFormat.QOperator, QuantType.QUInt8, QuantType.QInt8,
                 {"WeightSymmetric": True}),
    # QDQ: float ops between QuantizeLinear/DequantizeLinear pairs.
    "qdq-s8s8-sym": (QuantFormat.QDQ, QuantType.QInt8, QuantType.QInt8,
                     {"ActivationSymmetric": True, "WeightSymmetric": True}),
}


REPRO_SHAPE = [1, 64, 36, 36]


def repro(out_dir: Path) -> None:
    """One convolution, float and quantized like the embedder's variants."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out_dir.mkdir(parents=True, exist_ok=True)
    # A fixed generator: the repro's bytes are the same on every run.
    rng = np.random.default_rng(7)
    w = (rng.standard_normal((64, 64, 3, 3)) * 0.05).astype(np.float32)
    b = (rng.standard_normal(64) * 0.1).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])],
        "conv3x3",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, REPRO_SHAPE)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, REPRO_SHAPE)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    float_path = out_dir / "conv3x3-float.onnx"
    onnx.save(model, str(float_path))

    class Random(CalibrationDataReader):
        def __init__(self):
            self.it = iter(
                [{"x": rng.standard_normal(REPRO_SHAPE).astype(np.float32)} for _ in range(4)]
            )

        def get_next(self):
            return next(self.it, None)

    quantize_static(
        str(float_path), str(out_dir / "conv3x3-qop-s8s8-sym.onnx"), Random(),
        quant_format=QuantFormat.QOperator, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    model, chips_dir, out_dir = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    out_dir.mkdir(parents=True, exist_ok=True)
    import onnx

    input_name = onnx.load(str(model)).graph.input[0].name
    for name, (fmt, act, wt, extra) in STATIC.items():
        out = out_dir / f"dlib-resnet-v1-{name}.onnx"
        quantize_static(
            str(model), str(out), Chips(chips_dir, input_name),
            quant_format=fmt, op_types_to_quantize=["Conv", "MatMul"],
            per_channel=True, activation_type=act, weight_type=wt,
            extra_options=extra,
        )
        print(name, out, out.stat().st_size)
    # Dynamic: ConvInteger / MatMulInteger, activations quantized per run.
    out = out_dir / "dlib-resnet-v1-dynamic-u8.onnx"
    quantize_dynamic(str(model), str(out), op_types_to_quantize=["Conv", "MatMul"],
                     per_channel=False, weight_type=QuantType.QUInt8)
    print("dynamic-u8", out, out.stat().st_size)
    repro(out_dir / "repro")
    return 0


if __name__ == "__main__":
    sys.exit(main())
