"""TensorFlow's and LiteRT's native start-up lines kept out of the terminal.

Both print from C++ straight to the process's stderr (file descriptor 2): oneDNN and CUDA
probing when TensorFlow starts, and "Created TensorFlow Lite XNNPACK delegate for CPU" the first
time LiteRT applies its default delegate in a process (it prints that once per process, and no
public setting silences it). Starting both once with descriptor 2 pointed at /dev/null leaves
nothing for them to say later; Python's own errors still show.
"""

from __future__ import annotations

import os
import sys

_LITERT_STARTED = False


def quiet_native_startup(tensorflow: bool = True) -> None:
    """Start TensorFlow (unless ``tensorflow`` is False) and LiteRT with stderr silenced."""
    global _LITERT_STARTED
    if _LITERT_STARTED and (not tensorflow or "tensorflow" in sys.modules):
        return
    from autocompress.models.rewrite import tiny_model

    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            if tensorflow and "tensorflow" not in sys.modules:
                import tensorflow as tf

                tf.config.list_physical_devices()
            from ai_edge_litert.interpreter import Interpreter

            Interpreter(model_content=tiny_model()).allocate_tensors()
            _LITERT_STARTED = True
    finally:
        os.dup2(saved, 2)
        os.close(saved)
