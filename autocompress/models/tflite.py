"""A float ``.tflite`` file as the model to compress: the post-training route.

Any model that reaches a float ``.tflite`` file enters here: PyTorch through litert-torch, a Keras
3 model the translation refuses through ``model.export(path, format="litert")``, or any other
converter's output. Without a trainable graph only post-training choices apply: the quantization
modes that LiteRT Quantizer applies to the float file
(:mod:`autocompress.litert.ptq`). A space that asks for a training-time technique is refused.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autocompress.data.arrays import Arrays
from autocompress.errors import InputError
from autocompress.recipe import OFF, TRAINING_FIELDS, TRAINING_MODES

if TYPE_CHECKING:
    from autocompress.space import SearchSpace


@dataclass(frozen=True)
class TfliteTeacher:
    """A float ``.tflite`` model as plain bytes (safe to send between processes)."""

    content: bytes
    source: str = "<tflite>"
    trainable: bool = field(default=False, init=False)

    @classmethod
    def from_file(cls, path: Path) -> TfliteTeacher:
        """Read and check the file: LiteRT must load it, with float inputs and outputs.

        A file without a signature gets one made from its subgraph's input and output tensor
        names, float16 weights (DEQUANTIZE of constants) are widened to float32 and an older
        converter's op codes moved to the current field (:mod:`autocompress.models.rewrite`):
        from here on every file is read by signature."""
        from ai_edge_litert.interpreter import Interpreter

        from autocompress.models.rewrite import normalized

        if not path.is_file():
            raise InputError(str(path), "model file not found")
        content = path.read_bytes()
        try:
            interpreter = Interpreter(model_content=content)
            interpreter.allocate_tensors()
        except Exception as exc:  # LiteRT raises ValueError / RuntimeError for a bad file
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise InputError(
                str(path), f"LiteRT cannot load it as a .tflite model: {reason}"
            ) from None
        signatures = interpreter.get_signature_list()
        if len(signatures) > 1:
            raise InputError(
                str(path),
                f"has {len(signatures)} signatures ({', '.join(signatures)}): give a file with "
                "the one to compress",
            )
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        for kind, detail in [*(("input", d) for d in inputs), *(("output", d) for d in outputs)]:
            if np.dtype(detail["dtype"]) != np.float32:
                raise InputError(
                    str(path),
                    f"its {kind} is {np.dtype(detail['dtype']).name}: give the float model "
                    "(autocompress quantizes it)",
                )
        try:
            content = normalized(content)
        except ValueError as exc:
            raise InputError(str(path), f"cannot name its inputs and outputs: {exc}") from None
        return cls(content=content, source=str(path))

    def digest(self) -> str:
        """Content hash: what stage-cache keys and the audit's lineage name the teacher by."""
        return hashlib.sha256(self.content).hexdigest()

    def io_shapes(self) -> tuple[dict[str, tuple], dict[str, tuple]]:
        """Input and output shapes by signature name, without the batch dimension (None where
        dynamic); a file without a signature (not read by :meth:`from_file`) by tensor name."""
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_content=self.content)

        def shape(detail: dict) -> tuple:
            dims = detail.get("shape_signature", detail["shape"])
            return tuple(None if d < 0 else int(d) for d in dims[1:])

        signatures = interpreter.get_signature_list()
        if len(signatures) == 1:
            runner = interpreter.get_signature_runner(next(iter(signatures)))
            return (
                {n: shape(d) for n, d in runner.get_input_details().items()},
                {n: shape(d) for n, d in runner.get_output_details().items()},
            )
        return (
            {d["name"]: shape(d) for d in interpreter.get_input_details()},
            {d["name"]: shape(d) for d in interpreter.get_output_details()},
        )

    def predict(self, x: Arrays) -> Arrays:
        """The float model's outputs on ``x`` (LiteRT, batched; by output name for several)."""
        from autocompress.evaluation.deployed import predict

        return predict(self.content, x)


def check_space(space: SearchSpace, model_source: str) -> None:
    """A space for a ``.tflite`` model may search only post-training choices."""
    for param in space.params:
        if param.name not in (*TRAINING_FIELDS, "quantization"):
            continue
        values = param.choices if param.choices is not None else (param.low, param.high)
        bad = [
            v
            for v in values
            if (v in TRAINING_MODES if param.name == "quantization" else v != OFF[param.name])
        ]
        if bad:
            raise InputError(
                space.source,
                f"{param.name}={bad[0]!r} needs a trainable model, but {model_source} is a "
                ".tflite file: it can be searched over post-training quantization only "
                "(use --space tflite)",
            )
