"""Convert dlib's face recognition ResNet (.dat) into an ONNX graph.

Reads `dlib_face_recognition_resnet_model_v1.dat` with a parser of dlib's
own serialisation, checks every layer against the architecture the file is
known to hold, and writes the same network with numpy and onnx only:

    input       "input"       float32 [1, 3, 150, 150]  RGB, already
                              normalised: (pixel - mean[c]) / 256
    output      "descriptor"  float32 [1, 128]  raw, NOT L2-normalised

The conversion is deterministic: the same .dat gives the same bytes, so the
output's sha256 can be pinned in models/manifest.toml.

Format facts this parser relies on (dlib's serialize()/deserialize(); each
one is checked while reading, and a surprise stops the conversion):

* Integer: one control byte, then that many little-endian magnitude bytes.
  The low four bits of the control byte give the byte count (at most 8),
  the high bit (0x80) marks a negative value. Zero is written `01 00`.
* String: an integer length, then the raw bytes (no terminator).
* bool: one byte, ASCII '1' or '0'.
* float/double outside tensors: two integers, a mantissa and a base-2
  exponent; value = mantissa * 2**exponent (exponents of 32000 and above
  encode inf/nan and are rejected here).
* tensor: integer version 2, then num_samples, k, nr, nc as integers, then
  num_samples*k*nr*nc raw little-endian IEEE float32 values.
* alias_tensor (a view into a layer's params): integer version 1, then
  num_samples, k, nr, nc; no values.
* The network is `loss_metric<fc_no_bias<128, avg_pool_everything<...>>>`.
  add_loss_layer writes version 1, the loss details, then its subnetwork.
  loss_metric_ details: the string "loss_metric_2", margin, distance
  threshold (two floats).
* add_layer writes version 2, its whole subnetwork, then its layer details,
  then three bools and three tensors (x_grad, cached_output, params_grad).
  The innermost add_layer (the one that owns the input layer) writes
  version 3 (or 2), the input layer, its layer details, three bools, three
  tensors (x_grad, cached_output, grad_final) and, from version 3 on, an
  integer sample expansion factor.
* tag layers and skip layers write version 1 and their subnetwork only, so
  the file cannot tell them apart: their places are checked against the
  known architecture, which says what they mean.
* Because every layer writes its subnetwork before its own details, the
  file opens with the chain of versions from the output side inwards, then
  the input layer, then all layer details from the input side outwards.
* input_rgb_image_sized: the string "input_rgb_image_sized", the per-channel
  means of red, green and blue (floats), then the rows and columns (150).
  dlib feeds (pixel - mean) / 256 per channel, channels first, RGB.
* con_ details: "con_4", params tensor, num_filters, nr, nc, stride_y,
  stride_x, padding_y, padding_x (integers), the filters and biases
  alias_tensors, then four floats (learning-rate and weight-decay
  multipliers). params holds the filters as (out, in, rows, cols) in
  row-major order, then one bias per filter. dlib's convolution is a
  cross-correlation with that layout, exactly ONNX's Conv with OIHW weights.
  Default padding: 0 when the stride is not 1, else half the filter size.
* affine_ details: "affine_", params tensor (per-channel scales, then
  per-channel shifts), the gamma and beta alias_tensors, and an integer
  mode (0 = per channel). Output = input * scale[c] + shift[c]: a batch
  norm folded at training time.
* relu_ and add_prev_ details: their tag string only ("relu_",
  "add_prev_").
* max_pool_ and avg_pool_ details: "max_pool_2" / "avg_pool_2", then nr,
  nc, stride_y, stride_x, padding_y, padding_x. Their output size is
  1 + (size + 2*padding - window) / stride, rounded down, so
  max_pool<3,3,2,2> takes 72x72 to 35x35 and avg_pool<2,2,2,2> takes 4x4
  to 2x2 and 3x3 to 1x1; a window never reaches past the input then, so an
  average always divides by the full window. nr = nc = 0 (with stride 1)
  means one window over the whole input (avg_pool_everything).
* fc_ details: "fc_2", num_outputs, num_inputs, params tensor, the weights
  and biases alias_tensors, an integer bias mode (1 = no bias), then four
  floats. The weights are a (num_inputs, num_outputs) row-major matrix
  and output = input x weights.
* add_prev_ adds its input to the output of a tagged earlier layer. When
  their shapes differ the result takes the larger size in every dimension
  and the smaller tensor counts as zero where it has no values: channels
  are zero-padded at the end, rows and columns at the bottom and right.

Usage: python dlib_to_onnx.py INPUT.dat OUTPUT.onnx
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# The opset and IR version are fixed so the bytes do not depend on which
# onnx version wrote them; 13 has every operator used here and tract reads it.
OPSET = 13
IR_VERSION = 7
PRODUCER = "doorman models/dlib_to_onnx.py"
PRODUCER_VERSION = "1"

INPUT_NAME = "input"
OUTPUT_NAME = "descriptor"
INPUT_SIZE = 150
DESCRIPTOR_DIM = 128


class FormatError(Exception):
    """The file does not hold what this converter expects."""


# ---------------------------------------------------------------------------
# Reading dlib's serialisation
# ---------------------------------------------------------------------------


class Reader:
    """Sequential reader of dlib's serialised values."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise FormatError(
                f"unexpected end of file at byte {self.pos} (wanted {n} bytes)"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        at = self.pos
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise FormatError(f"bad integer control byte {control:#04x} at {at}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def string(self) -> str:
        length = self.int()
        if not 0 <= length <= 256:
            raise FormatError(f"implausible string length {length} at {self.pos}")
        return self._take(length).decode("ascii")

    def peek_string_startswith(self, prefix: str) -> bool:
        saved = self.pos
        try:
            return self.string().startswith(prefix)
        except (FormatError, UnicodeDecodeError):
            return False
        finally:
            self.pos = saved

    def bool(self) -> bool:
        at = self.pos
        byte = self._take(1)
        if byte not in (b"0", b"1"):
            raise FormatError(f"bad bool byte {byte!r} at {at}")
        return byte == b"1"

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        if exponent >= 32000:
            raise FormatError(f"non-finite float (exponent {exponent}) at {self.pos}")
        return float(mantissa) * 2.0**exponent

    def expect_string(self, tag: str) -> None:
        at = self.pos
        got = self.string()
        if got != tag:
            raise FormatError(f"expected {tag!r} at byte {at}, found {got!r}")

    def tensor(self) -> np.ndarray:
        at = self.pos
        version = self.int()
        if version != 2:
            raise FormatError(f"tensor version {version} at {at}, expected 2")
        dims = tuple(self.int() for _ in range(4))
        count = int(np.prod(dims, dtype=np.int64))
        raw = self._take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(dims)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        at = self.pos
        version = self.int()
        if version != 1:
            raise FormatError(f"alias_tensor version {version} at {at}, expected 1")
        return tuple(self.int() for _ in range(4))


@dataclass
class Layer:
    """One entry of the network, input side first."""

    kind: str  # con, affine, relu, max_pool, avg_pool, add_prev, fc, wrapper
    params: dict = field(default_factory=dict)
    offset: int = 0  # byte offset of the layer's details, for messages


def _read_details(r: Reader) -> Layer:
    at = r.pos
    tag = r.string()
    if tag == "con_4":
        params = r.tensor()
        p = dict(
            num_filters=r.int(),
            nr=r.int(),
            nc=r.int(),
            stride_y=r.int(),
            stride_x=r.int(),
            padding_y=r.int(),
            padding_x=r.int(),
        )
        p["filters_alias"] = r.alias_tensor()
        p["biases_alias"] = r.alias_tensor()
        for _ in range(4):
            r.float()
        p["values"] = params.reshape(-1)
        return Layer("con", p, at)
    if tag == "affine_":
        params = r.tensor()
        p = dict(gamma_alias=r.alias_tensor(), beta_alias=r.alias_tensor())
        p["mode"] = r.int()
        p["values"] = params.reshape(-1)
        return Layer("affine", p, at)
    if tag == "relu_":
        return Layer("relu", {}, at)
    if tag == "add_prev_":
        return Layer("add_prev", {}, at)
    if tag in ("max_pool_2", "avg_pool_2"):
        p = dict(
            nr=r.int(),
            nc=r.int(),
            stride_y=r.int(),
            stride_x=r.int(),
            padding_y=r.int(),
            padding_x=r.int(),
        )
        return Layer("max_pool" if tag == "max_pool_2" else "avg_pool", p, at)
    if tag == "fc_2":
        p = dict(num_outputs=r.int(), num_inputs=r.int())
        params = r.tensor()
        p["weights_alias"] = r.alias_tensor()
        p["biases_alias"] = r.alias_tensor()
        p["bias_mode"] = r.int()
        for _ in range(4):
            r.float()
        p["values"] = params.reshape(-1)
        return Layer("fc", p, at)
    raise FormatError(f"unknown layer tag {tag!r} at byte {at}")


def _skip_layer_state(r: Reader, input_version: int | None) -> None:
    """Skip the training state an add_layer writes after its details."""
    for _ in range(3):
        r.bool()
    for _ in range(3):
        r.tensor()
    if input_version is not None and input_version >= 3:
        r.int()  # sample expansion factor


@dataclass
class DlibNet:
    mean_rgb: tuple[float, float, float]
    input_rows: int
    input_cols: int
    layers: list[Layer]  # input side first, tag/skip layers as "wrapper"


def read_dlib_net(data: bytes) -> DlibNet:
    r = Reader(data)

    version = r.int()
    if version != 1:
        raise FormatError(f"add_loss_layer version {version}, expected 1")
    r.expect_string("loss_metric_2")
    r.float()  # margin
    r.float()  # distance threshold

    # The chain of versions, output side first, down to the input layer.
    chain: list[tuple[str, int]] = []
    while True:
        v = r.int()
        if v == 1:
            chain.append(("wrapper", v))
        elif v in (2, 3) and r.peek_string_startswith("input_"):
            chain.append(("input", v))
            break
        elif v == 2:
            chain.append(("layer", v))
        else:
            raise FormatError(f"unexpected layer version {v} at byte {r.pos}")
        if len(chain) > 10_000:
            raise FormatError("no input layer found")

    r.expect_string("input_rgb_image_sized")
    mean_rgb = (r.float(), r.float(), r.float())
    rows, cols = r.int(), r.int()

    layers: list[Layer] = []
    for kind, v in reversed(chain):
        if kind == "wrapper":
            layers.append(Layer("wrapper"))
            continue
        layers.append(_read_details(r))
        _skip_layer_state(r, v if kind == "input" else None)

    if r.pos != len(data):
        raise FormatError(
            f"{len(data) - r.pos} unread bytes at the end (stopped at {r.pos})"
        )
    return DlibNet(mean_rgb, rows, cols, layers)


# ---------------------------------------------------------------------------
# The architecture the file must hold
# ---------------------------------------------------------------------------

# (channels, blocks) per stage, input side first; "down" blocks halve the
# size with a stride-2 first convolution and an average-pooled shortcut.
STAGES = [
    (32, ["res", "res", "res"]),
    (64, ["down", "res", "res", "res"]),
    (128, ["down", "res", "res"]),
    (256, ["down", "res", "res"]),
    (256, ["down"]),
]
STEM_FILTERS = 32
STEM_KERNEL = 7
EXPECTED_CONVOLUTIONS = 29


def _default_padding(kernel: int, stride: int) -> int:
    return 0 if stride != 1 else kernel // 2


def expected_layers() -> list[tuple[str, dict]]:
    """The layer sequence (input side first) of dlib's face ResNet."""
    seq: list[tuple[str, dict]] = []

    def conv(n_out: int, n_in: int, k: int, s: int) -> None:
        seq.append(
            (
                "con",
                dict(num_filters=n_out, n_in=n_in, nr=k, nc=k, stride_y=s, stride_x=s),
            )
        )
        seq.append(("affine", dict(channels=n_out)))

    conv(STEM_FILTERS, 3, STEM_KERNEL, 2)
    seq.append(("relu", {}))
    seq.append(("max_pool", dict(nr=3, nc=3, stride_y=2, stride_x=2)))
    channels = STEM_FILTERS
    for n, blocks in STAGES:
        for block in blocks:
            stride = 2 if block == "down" else 1
            seq.append(("wrapper", dict(role="tag1: block input")))
            conv(n, channels, 3, stride)
            seq.append(("relu", {}))
            conv(n, n, 3, 1)
            if block == "down":
                seq.append(("wrapper", dict(role="tag2: branch output")))
                seq.append(("wrapper", dict(role="skip1: back to block input")))
                seq.append(("avg_pool", dict(nr=2, nc=2, stride_y=2, stride_x=2)))
            seq.append(("add_prev", dict(block=block)))
            seq.append(("relu", {}))
            channels = n
    seq.append(("avg_pool", dict(nr=0, nc=0, stride_y=1, stride_x=1)))
    seq.append(("fc", dict(num_outputs=DESCRIPTOR_DIM, num_inputs=channels)))
    return seq


def check_against_architecture(net: DlibNet) -> list[tuple[Layer, dict]]:
    """Pair every layer with its expected role; raise on any difference."""
    want = expected_layers()
    got = net.layers
    if (net.input_rows, net.input_cols) != (INPUT_SIZE, INPUT_SIZE):
        raise FormatError(
            f"input is {net.input_rows}x{net.input_cols}, expected 150x150"
        )
    n_conv = sum(1 for layer in got if layer.kind == "con")
    if n_conv != EXPECTED_CONVOLUTIONS:
        raise FormatError(
            f"{n_conv} convolutions in the file, expected {EXPECTED_CONVOLUTIONS}"
        )
    if len(got) != len(want):
        raise FormatError(f"{len(got)} layers in the file, expected {len(want)}")

    for i, (layer, (kind, spec)) in enumerate(zip(got, want, strict=True)):
        where = f"layer {i} ({kind}, details at byte {layer.offset})"
        if layer.kind != kind:
            raise FormatError(f"{where}: the file has {layer.kind!r} there")
        p = layer.params
        if kind == "con":
            for key in ("num_filters", "nr", "nc", "stride_y", "stride_x"):
                if p[key] != spec[key]:
                    raise FormatError(
                        f"{where}: {key} is {p[key]}, expected {spec[key]}"
                    )
            for axis, k, s in (
                ("y", p["nr"], p["stride_y"]),
                ("x", p["nc"], p["stride_x"]),
            ):
                if p["padding_" + axis] != _default_padding(k, s):
                    raise FormatError(
                        f"{where}: padding_{axis} is {p['padding_' + axis]}"
                    )
            shape = (spec["num_filters"], spec["n_in"], spec["nr"], spec["nc"])
            n_weights = int(np.prod(shape))
            if p["values"].size != n_weights + spec["num_filters"]:
                raise FormatError(
                    f"{where}: {p['values'].size} parameters, expected "
                    f"{n_weights} filter values + {spec['num_filters']} biases"
                )
            if p["filters_alias"] != shape:
                raise FormatError(
                    f"{where}: filters are {p['filters_alias']}, expected {shape}"
                )
            if p["biases_alias"] != (1, spec["num_filters"], 1, 1):
                raise FormatError(f"{where}: biases are {p['biases_alias']}")
        elif kind == "affine":
            c = spec["channels"]
            if p["values"].size != 2 * c:
                raise FormatError(
                    f"{where}: {p['values'].size} parameters, expected {2 * c}"
                )
            if p["gamma_alias"] != (1, c, 1, 1) or p["beta_alias"] != (1, c, 1, 1):
                raise FormatError(
                    f"{where}: gamma/beta views {p['gamma_alias']}, {p['beta_alias']}"
                )
            if p["mode"] != 0:
                raise FormatError(
                    f"{where}: affine mode {p['mode']}, expected 0 (per channel)"
                )
        elif kind in ("max_pool", "avg_pool"):
            for key in ("nr", "nc", "stride_y", "stride_x"):
                if p[key] != spec[key]:
                    raise FormatError(
                        f"{where}: {key} is {p[key]}, expected {spec[key]}"
                    )
            if p["padding_y"] != 0 or p["padding_x"] != 0:
                raise FormatError(
                    f"{where}: padding {p['padding_y']},{p['padding_x']}, expected 0"
                )
        elif kind == "fc":
            n_out, n_in = spec["num_outputs"], spec["num_inputs"]
            if (p["num_outputs"], p["num_inputs"]) != (n_out, n_in):
                raise FormatError(
                    f"{where}: {p['num_inputs']}->{p['num_outputs']}, expected {n_in}->{n_out}"
                )
            if p["bias_mode"] != 1:
                raise FormatError(
                    f"{where}: bias mode {p['bias_mode']}, expected 1 (no bias)"
                )
            if p["values"].size != n_in * n_out:
                raise FormatError(
                    f"{where}: {p['values'].size} parameters, expected {n_in * n_out}"
                )
            if p["weights_alias"] != (n_in, n_out, 1, 1):
                raise FormatError(f"{where}: weights are {p['weights_alias']}")
        if kind in ("con", "affine", "fc") and not np.all(np.isfinite(p["values"])):
            raise FormatError(f"{where}: non-finite parameters")
    return list(zip(got, [spec for _, spec in want], strict=True))


# ---------------------------------------------------------------------------
# The network as plain stages, shared by the ONNX writer and the reference
# ---------------------------------------------------------------------------


@dataclass
class Conv:
    """A convolution with the following affine layer folded in."""

    weight: np.ndarray  # float32 (out, in, k, k)
    bias: np.ndarray  # float32 (out,)
    stride: int
    padding: int


def fold(con: Layer, affine: Layer, n_in: int) -> Conv:
    """conv(x, W) + b, then * g + s  ==  conv(x, W * g) + (b * g + s).

    Computed in float64 and rounded once to float32, so the result is the
    same on every machine.
    """
    p = con.params
    n_out, k = p["num_filters"], p["nr"]
    n_w = n_out * n_in * k * k
    w = p["values"][:n_w].astype(np.float64).reshape(n_out, n_in, k, k)
    b = p["values"][n_w:].astype(np.float64)
    a = affine.params["values"].astype(np.float64)
    gamma, beta = a[:n_out], a[n_out:]
    return Conv(
        weight=(w * gamma[:, None, None, None]).astype(np.float32),
        bias=(b * gamma + beta).astype(np.float32),
        stride=p["stride_y"],
        padding=p["padding_y"],
    )


@dataclass
class Block:
    conv1: Conv
    conv2: Conv
    down: bool
    n_in: int
    n_out: int


@dataclass
class Network:
    stem: Conv
    pool_kernel: int
    pool_stride: int
    blocks: list[Block]
    fc: np.ndarray  # float32 (num_inputs, num_outputs)


def build_network(net: DlibNet) -> Network:
    paired = check_against_architecture(net)
    layers = [layer for layer, _ in paired]
    it = iter(layers)

    def next_kind(kind: str) -> Layer:
        layer = next(it)
        assert layer.kind == kind, (layer.kind, kind)  # checked above
        return layer

    stem = fold(next_kind("con"), next_kind("affine"), 3)
    next_kind("relu")
    pool = next_kind("max_pool")
    blocks = []
    channels = STEM_FILTERS
    for n, kinds in STAGES:
        for block in kinds:
            next_kind("wrapper")
            c1 = fold(next_kind("con"), next_kind("affine"), channels)
            next_kind("relu")
            c2 = fold(next_kind("con"), next_kind("affine"), n)
            if block == "down":
                next_kind("wrapper")
                next_kind("wrapper")
                next_kind("avg_pool")
            next_kind("add_prev")
            next_kind("relu")
            blocks.append(Block(c1, c2, block == "down", channels, n))
            channels = n
    next_kind("avg_pool")
    fc = next_kind("fc")
    weights = fc.params["values"].reshape(
        fc.params["num_inputs"], fc.params["num_outputs"]
    )
    return Network(
        stem,
        pool.params["nr"],
        pool.params["stride_y"],
        blocks,
        weights.astype(np.float32),
    )


def pool_out(size: int, window: int, stride: int) -> int:
    """dlib's pooling and convolution output size (padding 0)."""
    return 1 + (size - window) // stride


# ---------------------------------------------------------------------------
# ONNX graph
# ---------------------------------------------------------------------------


class GraphBuilder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: list[str], name: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv(self, x: str, conv: Conv, name: str) -> str:
        w = self.const(name + ".weight", conv.weight)
        b = self.const(name + ".bias", conv.bias)
        k = conv.weight.shape[2]
        p = conv.padding
        return self.node(
            "Conv",
            [x, w, b],
            name,
            kernel_shape=[k, k],
            strides=[conv.stride, conv.stride],
            pads=[p, p, p, p],
        )

    def pad_end(self, x: str, channels: int, rows: int, cols: int, name: str) -> str:
        """Zero-pad at the end of the channel, row and column axes."""
        pads = np.array([0, 0, 0, 0, 0, channels, rows, cols], dtype=np.int64)
        return self.node(
            "Pad", [x, self.const(name + ".pads", pads)], name, mode="constant"
        )


def to_onnx(
    network: Network, mean_rgb, source_name: str, source_sha256: str
) -> onnx.ModelProto:
    g = GraphBuilder()
    size = INPUT_SIZE

    x = g.conv(INPUT_NAME, network.stem, "stem/conv")
    size = pool_out(size, network.stem.weight.shape[2], network.stem.stride)
    x = g.node("Relu", [x], "stem/relu")
    k, s = network.pool_kernel, network.pool_stride
    x = g.node(
        "MaxPool",
        [x],
        "stem/maxpool",
        kernel_shape=[k, k],
        strides=[s, s],
        pads=[0, 0, 0, 0],
    )
    size = pool_out(size, k, s)

    for i, block in enumerate(network.blocks):
        name = f"block{i:02d}_{block.n_out}{'_down' if block.down else ''}"
        y = g.conv(x, block.conv1, name + "/conv1")
        y = g.node("Relu", [y], name + "/relu1")
        y = g.conv(y, block.conv2, name + "/conv2")
        if block.down:
            branch = pool_out(size, 3, block.conv1.stride)
            shortcut = g.node(
                "AveragePool",
                [x],
                name + "/shortcut_pool",
                kernel_shape=[2, 2],
                strides=[2, 2],
                pads=[0, 0, 0, 0],
            )
            size = pool_out(size, 2, 2)
            extra_channels = block.n_out - block.n_in
            if extra_channels:
                shortcut = g.pad_end(
                    shortcut, extra_channels, 0, 0, name + "/shortcut_pad"
                )
            # dlib's add of different sizes: the smaller (the branch) is
            # zero where it has no values, i.e. padded at bottom and right.
            if branch < size:
                y = g.pad_end(y, 0, size - branch, size - branch, name + "/branch_pad")
            elif branch > size:
                raise FormatError(
                    f"{name}: branch {branch} larger than shortcut {size}"
                )
        else:
            shortcut = x
        y = g.node("Add", [y, shortcut], name + "/add")
        x = g.node("Relu", [y], name + "/relu2")

    x = g.node("GlobalAveragePool", [x], "head/avgpool")
    x = g.node("Flatten", [x], "head/flatten", axis=1)
    fc = g.const("head/fc.weight", network.fc)
    g.nodes.append(helper.make_node("MatMul", [x, fc], [OUTPUT_NAME], name="head/fc"))

    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.FLOAT, [1, 3, INPUT_SIZE, INPUT_SIZE]
            )
        ],
        [
            helper.make_tensor_value_info(
                OUTPUT_NAME, TensorProto.FLOAT, [1, DESCRIPTOR_DIM]
            )
        ],
        g.initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name=PRODUCER,
        producer_version=PRODUCER_VERSION,
        doc_string=(
            "dlib's face recognition ResNet (dlib_face_recognition_resnet_model_v1), "
            "converted from its .dat weights. Input: RGB, (pixel - mean) / 256, "
            "NCHW. Output: the raw 128-d descriptor, not normalised."
        ),
    )
    model.ir_version = IR_VERSION
    meta = {
        "source": source_name,
        "source_sha256": source_sha256,
        "mean_rgb": ",".join(repr(float(m)) for m in mean_rgb),
        "scale": "0.00390625",
    }
    for key in sorted(meta):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, meta[key]
    return model


# ---------------------------------------------------------------------------
# Independent numpy reference, written from dlib's semantics (float64)
# ---------------------------------------------------------------------------


def _ref_conv(x: np.ndarray, conv: Conv) -> np.ndarray:
    c, h, w = x.shape
    k, s, p = conv.weight.shape[2], conv.stride, conv.padding
    xp = np.zeros((c, h + 2 * p, w + 2 * p))
    xp[:, p : p + h, p : p + w] = x
    oh, ow = pool_out(h + 2 * p, k, s), pool_out(w + 2 * p, k, s)
    cols = np.empty((c, k, k, oh, ow))
    for dy in range(k):
        for dx in range(k):
            cols[:, dy, dx] = xp[
                :, dy : dy + s * (oh - 1) + 1 : s, dx : dx + s * (ow - 1) + 1 : s
            ]
    out = np.tensordot(
        conv.weight.astype(np.float64), cols, axes=([1, 2, 3], [0, 1, 2])
    )
    return out + conv.bias.astype(np.float64)[:, None, None]


def _ref_pool(x: np.ndarray, k: int, s: int, op) -> np.ndarray:
    c, h, w = x.shape
    oh, ow = pool_out(h, k, s), pool_out(w, k, s)
    out = np.empty((c, oh, ow))
    for r in range(oh):
        for q in range(ow):
            out[:, r, q] = op(x[:, r * s : r * s + k, q * s : q * s + k], axis=(1, 2))
    return out


def _ref_add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    shape = tuple(max(i, j) for i, j in zip(a.shape, b.shape, strict=True))
    out = np.zeros(shape)
    out[: a.shape[0], : a.shape[1], : a.shape[2]] += a
    out[: b.shape[0], : b.shape[1], : b.shape[2]] += b
    return out


def reference_forward(network: Network, x: np.ndarray) -> np.ndarray:
    """The descriptor of one normalised (3, 150, 150) input, in float64."""
    relu = lambda v: np.maximum(v, 0.0)  # noqa: E731
    x = relu(_ref_conv(x.astype(np.float64), network.stem))
    x = _ref_pool(x, network.pool_kernel, network.pool_stride, np.max)
    for block in network.blocks:
        y = _ref_conv(relu(_ref_conv(x, block.conv1)), block.conv2)
        shortcut = _ref_pool(x, 2, 2, np.mean) if block.down else x
        x = relu(_ref_add(y, shortcut))
    return x.mean(axis=(1, 2)) @ network.fc.astype(np.float64)


# ---------------------------------------------------------------------------


def check_with_onnxruntime(path: str, network: Network) -> None:
    """Load the written file, run it, and compare with the numpy reference."""
    import onnxruntime as ort

    onnx.checker.check_model(onnx.load(path), full_check=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    seed = np.arange(3 * INPUT_SIZE * INPUT_SIZE, dtype=np.float64)
    x = (
        (np.sin(seed * 0.7) * 0.45)
        .astype(np.float32)
        .reshape(1, 3, INPUT_SIZE, INPUT_SIZE)
    )
    (out,) = session.run([OUTPUT_NAME], {INPUT_NAME: x})
    if out.shape != (1, DESCRIPTOR_DIM) or not np.all(np.isfinite(out)):
        raise FormatError(
            f"onnxruntime gave shape {out.shape}, finite={np.all(np.isfinite(out))}"
        )
    ref = reference_forward(network, x[0])
    diff = float(np.max(np.abs(out[0] - ref)))
    if diff > 1e-4:
        raise FormatError(f"onnxruntime and the numpy reference differ by {diff:.3g}")
    print(
        f"dlib_to_onnx: onnxruntime runs the graph; |descriptor| = "
        f"{np.linalg.norm(out):.4f}, max difference to the numpy reference "
        f"{diff:.2g}",
        file=sys.stderr,
    )


def convert(src: str, dst: str, check: bool = True) -> None:
    with open(src, "rb") as f:
        data = f.read()
    net = read_dlib_net(data)
    network = build_network(net)
    model = to_onnx(
        network, net.mean_rgb, os.path.basename(src), hashlib.sha256(data).hexdigest()
    )
    onnx.checker.check_model(model)
    tmp = dst + ".tmp"
    with open(tmp, "wb") as f:
        f.write(model.SerializeToString(deterministic=True))
    if check:
        check_with_onnxruntime(tmp, network)
    os.replace(tmp, dst)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help="dlib_face_recognition_resnet_model_v1.dat")
    parser.add_argument("dst", help="output .onnx")
    parser.add_argument(
        "--no-check", action="store_true", help="skip the onnxruntime and numpy checks"
    )
    args = parser.parse_args()
    try:
        convert(args.src, args.dst, check=not args.no_check)
    except FormatError as e:
        print(f"dlib_to_onnx: {args.src}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
