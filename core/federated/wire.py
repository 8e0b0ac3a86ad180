"""Records on the wire: numpy arrays <-> Flower ArrayRecords, and a manifest of what a
message carried (names, dtypes, shapes, numbers; never array contents) so the server can
show and a test can check exactly what crossed the site boundary."""

from __future__ import annotations

from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, Message


def to_record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord(
        {k: Array(np.ascontiguousarray(v, dtype=np.float32)) for k, v in arrays.items()}
    )


def from_record(record: ArrayRecord | None) -> dict[str, np.ndarray]:
    if record is None:
        return {}
    return {k: v.numpy() for k, v in record.items()}


def manifest(msg: Message) -> dict[str, Any]:
    """Everything in a message's content: each ArrayRecord's arrays as name -> [dtype,
    shape], each MetricRecord and ConfigRecord with its values."""
    content = msg.content
    return {
        "arrays": {
            key: {name: [a.dtype, list(a.shape)] for name, a in rec.items()}
            for key, rec in content.array_records.items()
        },
        "metrics": {key: _plain(dict(rec)) for key, rec in content.metric_records.items()},
        "configs": {key: _plain(dict(rec)) for key, rec in content.config_records.items()},
    }


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: an undefined metric is null."""
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in values.items()}
