"""A defensive reader of ``.tflite`` flatbuffers: ops, tensors, MACs, weight bytes, peak RAM.

The latency simulators read the deployed file itself, not the Keras model. The file is parsed with
the schema bindings that ship with LiteRT, behind a size cap, the ``TFL3`` identifier check and a
conversion of every parse error into one clean :class:`InputError` (a truncated or fuzzed file
must never take the process down).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema

from autocompress.errors import InputError

MAX_TFLITE_BYTES = 1 << 30

_OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
_DTYPE_BYTES = {
    "float32": 4,
    "float16": 2,
    "int32": 4,
    "uint8": 1,
    "int64": 8,
    "bool": 1,
    "int16": 2,
    "int8": 1,
    "float64": 8,
    "uint32": 4,
    "uint16": 2,
    "int4": 0.5,  # two to a byte
    "bfloat16": 2,
}
_NUMPY = {
    "float32": np.float32,
    "float16": np.float16,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "int32": np.int32,
}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of the main subgraph."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    constant: bool  # holds data in the file (a weight), not an activation
    data_bytes: int  # bytes of constant data in the file (0 for activations)
    zero_fraction: float | None = None  # share of exactly-zero weights (quantized: == zero point)
    pattern_2_4: bool = False  # weight with >= 2 zeros in every 4 consecutive inputs per output
    zero_point: int = 0  # quantized tensors: the (first) zero point; 0 = symmetric

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return int(np.ceil(self.elements * _DTYPE_BYTES.get(self.dtype, 4)))


@dataclass(frozen=True)
class OpInfo:
    """One operator with the work it does."""

    index: int
    name: str  # builtin op name, e.g. CONV_2D, or CUSTOM:<code>
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    macs: int  # multiply-accumulates of conv / depthwise / fully connected / matmul ops
    elementwise: int  # element operations of everything else (pooling windows counted)
    compute: str  # float32, float16, int8, int16x8 or hybrid (int8 weights, float activations)
    weight_bytes: int  # constant data this op reads
    activation_bytes: int  # activation tensors it reads and writes
    sparse_2_4: bool = False  # its weights hold the 2:4 pattern sparse tensor cores exploit


@dataclass(frozen=True)
class Graph:
    """The main subgraph of a ``.tflite`` file."""

    ops: list[OpInfo]
    tensors: list[TensorInfo]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    size_bytes: int
    extra: dict[str, int] = field(default_factory=dict)

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)

    @property
    def weight_bytes(self) -> int:
        return sum(t.data_bytes for t in self.tensors if t.constant)

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.name] = counts.get(op.name, 0) + 1
        return counts

    def peak_activation_bytes(self) -> int:
        """Largest total size of activations alive at once, in execution order.

        A tensor lives from the op that writes it (graph inputs: from the start) to the last op
        that reads it (graph outputs: to the end). TFLite's arena planner packs exactly these
        live ranges, so this is the arena it needs (before alignment padding).
        """
        n = len(self.ops)
        born: dict[int, int] = {i: -1 for i in self.inputs}
        last: dict[int, int] = {i: n for i in self.outputs}
        for op in self.ops:
            for t in op.outputs:
                born.setdefault(t, op.index)
            for t in op.inputs:
                if t >= 0:
                    last[t] = max(last.get(t, -1), op.index)
        peak = 0
        for step in range(-1, n):
            live = sum(
                self.tensors[t].nbytes
                for t, b in born.items()
                if not self.tensors[t].constant and b <= step <= last.get(t, b)
            )
            peak = max(peak, live)
        return peak

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form: what the simulators read of a file, without its weights'
        values (benchmarks/data keeps the Edge TPU calibration graphs in this form)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Graph:
        def tensor(t: dict[str, Any]) -> TensorInfo:
            return TensorInfo(**{**t, "shape": tuple(t["shape"])})

        def op(o: dict[str, Any]) -> OpInfo:
            return OpInfo(**{**o, "inputs": tuple(o["inputs"]), "outputs": tuple(o["outputs"])})

        return cls(
            ops=[op(o) for o in data["ops"]],
            tensors=[tensor(t) for t in data["tensors"]],
            inputs=tuple(data["inputs"]),
            outputs=tuple(data["outputs"]),
            size_bytes=int(data["size_bytes"]),
            extra=dict(data.get("extra", {})),
        )

    def peak_ram_bytes(self) -> int:
        """Activation arena plus every weight the interpreter keeps in memory."""
        return self.peak_activation_bytes() + self.weight_bytes + self.extra.get("runtime_bytes", 0)


def shape_ops(graph: Graph) -> set[int]:
    """Ops that only compute shapes (SHAPE -> STRIDED_SLICE -> PACK ...): with every tensor size
    fixed at compile time the compiler folds them, so they neither run nor break the mapping."""
    folded: set[int] = set()
    shape_tensors: set[int] = set()
    for op in graph.ops:
        outs_int = all(graph.tensors[t].dtype in ("int32", "int64") for t in op.outputs)
        ins = [t for t in op.inputs if t >= 0 and not graph.tensors[t].constant]
        if outs_int and (op.name == "SHAPE" or (ins and all(t in shape_tensors for t in ins))):
            folded.add(op.index)
            shape_tensors.update(op.outputs)
    return folded


def constant_only(graph: Graph, op: OpInfo) -> bool:
    """An op of constants only (a DEQUANTIZE of float16 weights): runtimes run it once at
    start-up, not per inference."""
    ins = [t for t in op.inputs if t >= 0]
    return bool(ins) and all(graph.tensors[t].constant for t in ins)


def read_tflite(data: bytes, source: str = "<bytes>") -> Graph:
    """Parse ``data``; raises :class:`InputError` naming ``source`` for anything malformed."""
    if len(data) > MAX_TFLITE_BYTES:
        raise InputError(source, f"larger than {MAX_TFLITE_BYTES} bytes")
    if len(data) < 8 or bytes(data[4:8]) != b"TFL3":
        raise InputError(source, "not a TFLite model (no TFL3 identifier)")
    try:
        return _read(bytes(data))
    except InputError:
        raise
    except Exception as exc:  # the generated bindings raise many types on corrupt offsets
        raise InputError(source, f"corrupt TFLite flatbuffer ({type(exc).__name__})") from None


def _read(buf: bytes) -> Graph:
    model = schema.Model.GetRootAs(buf, 0)
    if model.SubgraphsLength() < 1:
        raise InputError("<tflite>", "the model has no subgraph")
    sub = model.Subgraphs(0)
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        name = _OP_NAMES.get(code, f"OP_{code}")
        if name == "CUSTOM":
            custom = oc.CustomCode()
            name = f"CUSTOM:{custom.decode(errors='replace') if custom else '?'}"
        codes.append(name)

    produced_by: dict[int, int] = {}
    raw_ops = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        ins = tuple(int(x) for x in (op.InputsAsNumpy() if op.InputsLength() else []))
        outs = tuple(int(x) for x in (op.OutputsAsNumpy() if op.OutputsLength() else []))
        name = codes[op.OpcodeIndex()]
        raw_ops.append((name, ins, outs))
        for t in outs:
            produced_by[t] = i

    tensors: list[TensorInfo] = []
    for i in range(sub.TensorsLength()):
        t = sub.Tensors(i)
        shape = tuple(int(x) for x in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        dtype = _TYPE_NAMES.get(t.Type(), f"type{t.Type()}")
        buffer = model.Buffers(t.Buffer()) if 0 < t.Buffer() < model.BuffersLength() else None
        data = b""
        size = 0
        if buffer is not None:
            if buffer.DataLength():
                data = buffer.DataAsNumpy().tobytes()
                size = len(data)
            elif buffer.Size() > 1:  # large models keep data outside the flatbuffer
                size = int(buffer.Size())
                if buffer.Offset() + size <= len(buf):
                    data = buf[buffer.Offset() : buffer.Offset() + size]
        zero_point = 0
        q = t.Quantization()
        if q is not None and q.ZeroPointLength():
            zero_point = int(q.ZeroPointAsNumpy()[0])
        name = t.Name().decode(errors="replace") if t.Name() else f"t{i}"
        tensors.append(
            TensorInfo(
                index=i,
                name=name,
                shape=shape,
                dtype=dtype,
                constant=size > 0,
                data_bytes=size,
                zero_fraction=_zero_fraction(data, dtype, zero_point) if size else None,
                pattern_2_4=_pattern_2_4(data, dtype, zero_point, shape) if size else False,
                zero_point=zero_point,
            )
        )

    # A DEQUANTIZE of a constant (float16 weights) runs once at start-up: its output is a weight.
    for name, ins, outs in raw_ops:
        if name == "DEQUANTIZE" and ins and ins[0] >= 0 and tensors[ins[0]].constant:
            for o in outs:
                src = tensors[o]
                tensors[o] = TensorInfo(
                    src.index,
                    src.name,
                    src.shape,
                    src.dtype,
                    True,
                    src.nbytes,
                    tensors[ins[0]].zero_fraction,
                    tensors[ins[0]].pattern_2_4,
                    src.zero_point,
                )

    ops = [_op_info(i, name, ins, outs, tensors) for i, (name, ins, outs) in enumerate(raw_ops)]
    graph_inputs = tuple(int(x) for x in sub.InputsAsNumpy()) if sub.InputsLength() else ()
    graph_outputs = tuple(int(x) for x in sub.OutputsAsNumpy()) if sub.OutputsLength() else ()
    return Graph(
        ops=ops, tensors=tensors, inputs=graph_inputs, outputs=graph_outputs, size_bytes=len(buf)
    )


def _zero_fraction(data: bytes, dtype: str, zero_point: int) -> float | None:
    np_type = _NUMPY.get(dtype)
    if np_type is None or len(data) % np.dtype(np_type).itemsize:
        return None
    values = np.frombuffer(data, dtype=np_type)
    return float(np.mean(values == zero_point)) if values.size else None


def _pattern_2_4(data: bytes, dtype: str, zero_point: int, shape: tuple[int, ...]) -> bool:
    """Whether a weight of shape ``[outputs, ..., inputs]`` (TFLite's layout for conv and fully
    connected kernels) has at least two zeros in every group of four consecutive weights of
    each output, the 2:4 pattern that sparse tensor cores run at twice the math rate."""
    np_type = _NUMPY.get(dtype)
    if np_type is None or len(shape) not in (2, 4) or len(data) % np.dtype(np_type).itemsize:
        return False
    values = np.frombuffer(data, dtype=np_type)
    if values.size != int(np.prod(shape)) or shape[0] <= 0:
        return False
    per_output = values.reshape(shape[0], -1)
    if per_output.shape[1] % 4:
        return False
    groups = per_output.reshape(shape[0], -1, 4)
    return bool(np.all(np.sum(groups == zero_point, axis=-1) >= 2))


def _op_info(
    index: int, name: str, ins: tuple[int, ...], outs: tuple[int, ...], tensors: list[TensorInfo]
) -> OpInfo:
    def get(i: int) -> TensorInfo | None:
        return tensors[i] if 0 <= i < len(tensors) else None

    inputs = [get(i) for i in ins]
    outputs = [get(i) for i in outs]
    out = outputs[0] if outputs else None
    out_elems = out.elements if out else 0
    weight = inputs[1] if len(inputs) > 1 else None
    w_shape = weight.shape if weight is not None else ()
    macs = 0
    elementwise = 0
    if name == "CONV_2D" and len(w_shape) == 4:
        macs = out_elems * w_shape[1] * w_shape[2] * w_shape[3]  # [out ch, kh, kw, in ch]
    elif name == "DEPTHWISE_CONV_2D" and len(w_shape) == 4:
        macs = out_elems * w_shape[1] * w_shape[2]  # [1, kh, kw, ch]
    elif name == "FULLY_CONNECTED" and len(w_shape) == 2:
        macs = out_elems * w_shape[1]  # [units, in]
    elif (
        name == "TRANSPOSE_CONV" and len(inputs) > 2 and inputs[2] is not None and len(w_shape) == 4
    ):
        macs = inputs[2].elements * w_shape[0] * w_shape[1] * w_shape[2]
    elif name == "BATCH_MATMUL" and inputs and inputs[0] is not None and inputs[0].shape:
        macs = out_elems * inputs[0].shape[-1]
    elif name in ("AVERAGE_POOL_2D", "MAX_POOL_2D") and inputs and inputs[0] is not None:
        elementwise = max(out_elems, inputs[0].elements)  # every input element is read once
    else:
        elementwise = out_elems
    present = [t for t in (*inputs, *outputs) if t is not None]
    weights = [t for t in inputs if t is not None and t.constant]
    # The data input, not an index tensor: TRANSPOSE_CONV's first input is its output shape
    # (int32, computed at run time when the batch is dynamic).
    data_inputs = [t for t in inputs if t is not None and not t.constant]
    act_in = next((t for t in data_inputs if t.dtype not in ("int32", "int64")), None)
    act_in = act_in or (data_inputs[0] if data_inputs else None)
    act_dtype = act_in.dtype if act_in else (out.dtype if out else "float32")
    w_dtype = weights[0].dtype if weights and macs else None
    if act_dtype in ("int8", "uint8"):
        compute = "int8"
    elif act_dtype == "int16":
        compute = "int16x8"
    elif act_dtype == "float32" and w_dtype in ("int8", "uint8"):
        compute = "hybrid"
    elif act_dtype == "float16":
        compute = "float16"
    else:
        compute = "float32"
    return OpInfo(
        index=index,
        name=name,
        inputs=ins,
        outputs=outs,
        macs=int(macs),
        elementwise=int(elementwise),
        compute=compute,
        weight_bytes=sum(w.nbytes for w in weights),
        activation_bytes=sum(t.nbytes for t in present if not t.constant),
        sparse_2_4=bool(macs and weight is not None and weight.pattern_2_4),
    )
