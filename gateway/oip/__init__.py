"""The Open Inference Protocol (v2, as KServe, Triton and MLServer speak it) <-> numpy.

- `model`: a model's v2 view (signatures, v2 output names) and its metadata document;
- `decode`: an infer request (JSON, or JSON + binary tensor data) -> tensors;
- `encode`: outputs -> an infer response (JSON, or JSON + binary tensor data).
"""
