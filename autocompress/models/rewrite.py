""".tflite files rewritten through the object API of the schema bindings that ship with LiteRT
(``ai_edge_litert.schema_py_generated``): what a user's float file needs before the search
treats it like any converter's output.

* :func:`with_signature`: a file without a SignatureDef (older converters, many public model
  collections) gets one made from its subgraph's input and output tensor names, so that every
  part of the package -- data arrays by name, a metric's dicts, LiteRT Quantizer's calibration
  (which goes by signature), evaluation, export -- reads it by those names.
* :func:`float16_folded`: a file whose weights are float16 constants behind DEQUANTIZE ops (the
  converter's ``float16`` mode) is a float model; its weights are widened back to float32 and
  the DEQUANTIZE ops dropped, so that quantization starts from float32 weights as it does for
  every other float file.
* :func:`current_opcodes`: a file from an older converter (schema before 2.4) names its ops in
  ``deprecated_builtin_code`` only and leaves ``builtin_code`` at 0 (ADD); the interpreter reads
  the larger of the two, but LiteRT Quantizer reads ``builtin_code`` and quantized every op of
  MediaPipe's files as an ADD (weights asymmetric, int8 biases: files that do not run). The
  code goes into the current field, as the schema's rule says.
* :func:`tiny_model`: a one-op file (ABS), built without TensorFlow.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SIGNATURE_KEY = "serving_default"


def _read(tflite: bytes) -> Any:
    from ai_edge_litert import schema_py_generated as schema

    return schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)


def _write(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def has_signature(tflite: bytes) -> bool:
    from ai_edge_litert import schema_py_generated as schema

    return schema.Model.GetRootAsModel(tflite, 0).SignatureDefsLength() > 0


def with_signature(tflite: bytes) -> bytes:
    """The file with one signature (``serving_default``) whose input and output names are the
    main subgraph's tensor names; a file that has a signature is returned unchanged."""
    if has_signature(tflite):
        return tflite
    from ai_edge_litert import schema_py_generated as schema

    model = _read(tflite)
    graph = model.subgraphs[0]

    def maps(indices: Any) -> list[Any]:
        out = []
        for index in list(indices if indices is not None else []):
            entry = schema.TensorMapT()
            name = graph.tensors[index].name
            entry.name = name.decode() if isinstance(name, bytes) else str(name)
            entry.tensorIndex = int(index)
            out.append(entry)
        return out

    signature = schema.SignatureDefT()
    signature.signatureKey = SIGNATURE_KEY
    signature.subgraphIndex = 0
    signature.inputs = maps(graph.inputs)
    signature.outputs = maps(graph.outputs)
    names = [m.name for m in (*signature.inputs, *signature.outputs)]
    if len(set(names)) != len(names):
        raise ValueError(f"tensor names repeat among the model's inputs and outputs: {names}")
    model.signatureDefs = [signature]
    return _write(model)


def float16_folded(tflite: bytes) -> bytes:
    """The file with every DEQUANTIZE of a float16 constant replaced by the float32 constant it
    computes (the file unchanged when it has none)."""
    from ai_edge_litert import schema_py_generated as schema

    model = _read(tflite)
    dequantize = {
        i
        for i, code in enumerate(model.operatorCodes or [])
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.DEQUANTIZE
    }
    changed = False
    for graph in model.subgraphs or []:
        kept = []
        for op in graph.operators or []:
            source = graph.tensors[op.inputs[0]] if op.opcodeIndex in dequantize else None
            data = model.buffers[source.buffer].data if source is not None else None
            if source is None or source.type != schema.TensorType.FLOAT16 or data is None:
                kept.append(op)
                continue
            values = np.frombuffer(np.asarray(data, np.uint8).tobytes(), np.float16)
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(values.astype(np.float32).tobytes(), np.uint8)
            model.buffers.append(buffer)
            graph.tensors[op.outputs[0]].buffer = len(model.buffers) - 1
            changed = True
        graph.operators = kept
    if not changed:
        return tflite
    return _write(_without_unused(model))


def _without_unused(model: Any) -> Any:
    """Tensors no op, input or output refers to removed (their buffers emptied), indices renumbered
    in operators, subgraph inputs / outputs and signatures."""
    from ai_edge_litert import schema_py_generated as schema

    for index, graph in enumerate(model.subgraphs or []):
        used = {int(i) for op in graph.operators or [] for i in [*op.inputs, *op.outputs] if i >= 0}
        used |= {int(i) for i in [*graph.inputs, *graph.outputs]}
        for op in graph.operators or []:
            used |= {int(i) for i in (op.intermediates if op.intermediates is not None else [])}
        order = sorted(used)
        new = {old: n for n, old in enumerate(order)}
        for old, tensor in enumerate(graph.tensors):
            if old not in new and tensor.buffer > 0:
                model.buffers[tensor.buffer] = schema.BufferT()  # its data out of the file
        graph.tensors = [graph.tensors[i] for i in order]

        def renumber(indices: Any, new: dict[int, int] = new) -> list[int]:
            return [new[int(i)] if i >= 0 else -1 for i in list(indices)]

        for op in graph.operators or []:
            op.inputs, op.outputs = renumber(op.inputs), renumber(op.outputs)
            if op.intermediates is not None:
                op.intermediates = renumber(op.intermediates)
        graph.inputs, graph.outputs = renumber(graph.inputs), renumber(graph.outputs)
        for signature in model.signatureDefs or []:
            if signature.subgraphIndex == index:
                for entry in [*(signature.inputs or []), *(signature.outputs or [])]:
                    entry.tensorIndex = new[int(entry.tensorIndex)]
    return model


def current_opcodes(tflite: bytes) -> bytes:
    """The file with every operator code in ``builtin_code`` (unchanged when it is already)."""
    model = _read(tflite)
    stale = [
        code for code in model.operatorCodes or [] if code.builtinCode < code.deprecatedBuiltinCode
    ]
    if not stale:
        return tflite
    for code in stale:
        code.builtinCode = code.deprecatedBuiltinCode
    return _write(model)


def normalized(tflite: bytes) -> bytes:
    """What the search reads of a user's float file: current op codes, float16 weights widened,
    a signature (see the module's docstring)."""
    return with_signature(float16_folded(current_opcodes(tflite)))


def tiny_model() -> bytes:
    """A one-op float file (``y = abs(x)``, shape [1]): what primes LiteRT once per process."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT()
    model.version = 3
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.ABS
    code.version = 1
    model.operatorCodes = [code]
    model.buffers = [schema.BufferT()]
    graph = schema.SubGraphT()
    graph.tensors = []
    for name in ("x", "y"):
        tensor = schema.TensorT()
        tensor.shape, tensor.type, tensor.buffer, tensor.name = [1], 0, 0, name
        graph.tensors.append(tensor)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    graph.operators, graph.inputs, graph.outputs = [op], [0], [1]
    model.subgraphs = [graph]
    return _write(model)
