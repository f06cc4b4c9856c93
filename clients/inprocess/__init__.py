"""In-process model hosting: TF Serving's model semantics for any library loaded in the gateway.

`host.InProcessBackend` is the `ModelBackend`: version scanning and policy, availability-
preserving swaps, retiring versions, the worker pool and batching. What a library adds is a
`loader.ModelLoader` (load a version directory -> a `HostedVersion`: its signatures and
callables); scikit-learn's is `clients.sklearn_backend.SklearnLoader`.
"""
