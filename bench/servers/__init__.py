"""Servers the benchmark starts besides the gateway: echo ceilings and a KServe model."""
