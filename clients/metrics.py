"""Prometheus metrics that the backends record (the HTTP layer keeps its own).

Labels are bounded by configuration: `model` is always a configured model name.
"""

from __future__ import annotations

from prometheus_client import Counter

MODEL_LOADS = Counter(
    "gateway_model_loads_total",
    "Model version loads attempted by in-process backends, by outcome (loaded, failed)",
    ["model", "outcome"],
)
MODEL_UNLOADS = Counter(
    "gateway_model_unloads_total", "Model versions retired by in-process backends", ["model"]
)
