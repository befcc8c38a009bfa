"""What a runtime executes of a ``.tflite`` file, as one hash: the key under which candidates
whose files run the same kernels on the same shapes share one latency figure.

Sparsity and clustering change a dense file's weight *values* and no op, shape or type; two such
candidates timed apart differ only by noise, and a front that keeps them apart on latency ranks
by it (issue 38: 16 clusters + int8 and 50 % sparsity + int8 timed 0.623 and 0.635 ms, plain int8
0.810 ms, in one search; 0.765 / 0.758 / 0.778 ms quiet). The hash covers every op of every
subgraph in order with its options, and each tensor it reads or writes: shape, type, whether it
is quantized per tensor or per channel, whether it is a constant, and for a constant stored
sparse (XNNPACK's sparse inference runs those faster) its byte length. Weight values are not in
it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np


def op_signature(tflite: bytes) -> str:
    """The hash (hex) of the file's ops, their options and their tensors' shapes and types."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    codes = [
        (max(c.builtinCode, c.deprecatedBuiltinCode), _text(c.customCode))
        for c in model.operatorCodes or []
    ]
    h = hashlib.sha256()
    for graph in model.subgraphs or []:
        tensors = graph.tensors or []
        for op in graph.operators or []:
            options = op.builtinOptions
            described = sorted(vars(options).items()) if options is not None else []
            parts: list[Any] = [codes[op.opcodeIndex], described]
            for index in [*_ints(op.inputs), None, *_ints(op.outputs)]:
                parts.append("|" if index is None else _tensor(tensors, model.buffers, index))
            h.update(repr(parts).encode())
        h.update(repr((_ints(graph.inputs), _ints(graph.outputs))).encode())
    return h.hexdigest()


def _tensor(tensors: list[Any], buffers: list[Any], index: int) -> tuple[Any, ...]:
    if index < 0:
        return ("none",)
    t = tensors[index]
    q = t.quantization
    scales = 0 if q is None or q.scale is None else len(np.atleast_1d(q.scale))
    data = buffers[t.buffer].data if buffers and t.buffer < len(buffers) else None
    constant = data is not None and len(data) > 0
    sparse_bytes = len(data) if constant and t.sparsity is not None else 0
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
    return (shape, int(t.type), scales, constant, sparse_bytes)


def _ints(values: Any) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
