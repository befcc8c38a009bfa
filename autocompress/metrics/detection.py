"""Detection quality for box outputs: mean average precision at IoU 0.5, pure numpy.

One of the built-in metrics of :mod:`autocompress.metrics` (``map50``), kept apart because it
is the one metric that reads two outputs (boxes and class scores) by name.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _detection_parts(y: Any, role: str) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, K, 4), classes (N, K) or class scores (N, K, C)) of a two-output dict: the
    boxes are the output whose name says ``box`` (else the one ending in 4 numbers)."""
    if not isinstance(y, dict) or len(y) != 2:
        raise ValueError(f"map50 needs two {role} outputs, boxes and classes")
    names = sorted(y)
    named = [n for n in names if "box" in n.lower()]
    box_name = (
        named[0]
        if len(named) == 1
        else next((n for n in names if np.asarray(y[n]).shape[-1:] == (4,)), None)
    )
    if box_name is None:
        raise ValueError(f"map50: no {role} output holds boxes (name it *box*)")
    other = next(n for n in names if n != box_name)
    boxes = np.asarray(y[box_name], dtype=np.float64)
    return boxes.reshape(len(boxes), -1, 4), np.asarray(y[other])


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (M, 4) with every box in ``b`` (K, 4); boxes are (y0, x0, y1,
    x1) or any consistent corner order."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def map50(y_true: Any, y_pred: Any) -> float:
    """Mean average precision at IoU 0.5 (VOC all-point interpolation), over classes.

    ``y_true``: boxes (N, K, 4) and class ids (N, K), -1 for padding; ``y_pred``: boxes (N, K',
    4) and class scores (N, K', C): each predicted box is a detection of its top class with that
    class's score. A detection matches the best-overlapping unmatched ground-truth box of its
    class at IoU >= 0.5.
    """
    true_boxes, true_classes = _detection_parts(y_true, "target")
    pred_boxes, pred_scores = _detection_parts(y_pred, "model")
    true_classes = true_classes.reshape(len(true_classes), -1).astype(np.int64)
    pred_scores = pred_scores.reshape(len(pred_boxes), pred_boxes.shape[1], -1)
    pred_classes = np.argmax(pred_scores, axis=-1)
    confidence = np.max(pred_scores, axis=-1)
    precisions = []
    for c in np.unique(true_classes[true_classes >= 0]):
        hits: list[tuple[float, bool]] = []
        n_true = int(np.sum(true_classes == c))
        for i in range(len(true_boxes)):
            gt = true_boxes[i][true_classes[i] == c]
            mine = np.flatnonzero(pred_classes[i] == c)
            mine = mine[np.argsort(-confidence[i][mine])]
            used = np.zeros(len(gt), bool)
            iou = box_iou(pred_boxes[i][mine], gt) if len(gt) and len(mine) else None
            for j, d in enumerate(mine):
                match = False
                if iou is not None:
                    free = np.where(used, -1.0, iou[j])
                    best = int(np.argmax(free))
                    if free[best] >= 0.5:
                        used[best], match = True, True
                hits.append((float(confidence[i][d]), match))
        hits.sort(key=lambda h: -h[0])
        tp = np.cumsum([h[1] for h in hits]) if hits else np.zeros(0)
        recall = tp / n_true if len(tp) else np.zeros(0)
        precision = tp / np.arange(1, len(tp) + 1) if len(tp) else np.zeros(0)
        envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(tp) else np.zeros(0)
        steps = np.diff(np.concatenate([[0.0], recall]))
        precisions.append(float(np.sum(steps * envelope)))
    if not precisions:
        raise ValueError("map50: the targets hold no boxes")
    return float(np.mean(precisions))
