"""Classify and Regress on a loaded version, as TF Serving's classifier.cc, regressor.cc
and util.cc do them (messages and codes kept verbatim).

The method_name check is off by default, as in tensorflow_model_server
(--enable_signature_method_name_check=false): then any signature with one input named
"inputs" and the right outputs works, which is how native TF2 exports (method_name
tensorflow/serving/predict) are classified and regressed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tensorflow_serving.apis import classification_pb2, regression_pb2

from tfserving_compat.errors import invalid_argument
from tfserving_compat.loader import LoadedVersion
from tfserving_compat.predict import CLASSIFY_METHOD, DEFAULT_SIGNATURE, REGRESS_METHOD
from tfserving_compat.tensors import dtype_name, shape_debug_string, text_proto


def serialized_examples(input_proto: Any) -> np.ndarray:
    """util.cc InputToSerializedExampleTensor: one serialized tf.Example per entry.

    With a context, each entry is the serialized context followed by the serialized
    example (parsing the concatenation merges the two messages).
    """
    kind = input_proto.WhichOneof("kind")
    if kind == "example_list":
        items = [ex.SerializeToString() for ex in input_proto.example_list.examples]
    elif kind == "example_list_with_context":
        group = input_proto.example_list_with_context
        context = group.context.SerializeToString()
        items = [context + ex.SerializeToString() for ex in group.examples]
    else:
        items = []
    if not items:
        raise invalid_argument("Input is empty.")
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _find_signature(loaded: LoadedVersion, signature_name: str) -> Any:
    name = signature_name or DEFAULT_SIGNATURE
    signature = loaded.signature_defs.get(name)
    if signature is None:
        raise invalid_argument(f"No signature was found with the name: {name}")
    return signature


def _method_check(signature: Any, method: str, kind: str) -> None:
    if signature.method_name != method:
        raise invalid_argument(
            f"Expected {kind} signature method_name to be {method}. Was: {signature.method_name}"
        )


def _classification_io(signature: Any, check: bool) -> tuple[str, list[str]]:
    """classifier.cc PreProcessClassification: input tensor name, output tensor names."""
    if check:
        _method_check(signature, CLASSIFY_METHOD, "classification")
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise invalid_argument(
            f"Expected one or two output Tensors, found {len(signature.outputs)}"
        )
    if "inputs" not in signature.inputs:
        raise invalid_argument(
            f"No classification inputs found in SignatureDef: {text_proto(signature)}"
        )
    if "classes" not in signature.outputs and "scores" not in signature.outputs:
        raise invalid_argument(
            'Expected classification signature outputs to contain at least one of "classes" '
            f'or "scores". Signature was: {text_proto(signature)}'
        )
    outputs = [signature.outputs[k].name for k in ("classes", "scores") if k in signature.outputs]
    return signature.inputs["inputs"].name, outputs


def _regression_io(signature: Any, check: bool) -> tuple[str, list[str]]:
    """regressor.cc PreProcessRegression: input tensor name, output tensor names."""
    if check:
        _method_check(signature, REGRESS_METHOD, "regression")
    if len(signature.inputs) != 1:
        raise invalid_argument("Expected one input Tensor.")
    if len(signature.outputs) != 1:
        raise invalid_argument("Expected one output Tensor.")
    if "inputs" not in signature.inputs:
        raise invalid_argument(
            f"No regression inputs found in SignatureDef: {text_proto(signature)}"
        )
    if "outputs" not in signature.outputs:
        raise invalid_argument(
            f"No regression outputs found in SignatureDef: {text_proto(signature)}"
        )
    return signature.inputs["inputs"].name, [signature.outputs["outputs"].name]


def _check_matrix(tensor: np.ndarray, what: str, dtype: str, batch: int) -> None:
    """classifier.cc PostProcessClassificationResult checks for classes/scores."""
    if tensor.ndim != 2:
        raise invalid_argument(
            "Expected Tensor shape: [batch_size num_classes] but got " + shape_debug_string(tensor)
        )
    if dtype_name(tensor) != dtype:
        raise invalid_argument(f"Expected {what} Tensor of {dtype}. Got: {dtype_name(tensor)}")
    if tensor.shape[0] != batch:
        raise invalid_argument(
            f"Expected {what} output batch size of {batch}. Got: {tensor.shape[0]}"
        )


def run_classify(request: Any, loaded: LoadedVersion, version: int, check: bool) -> Any:
    """classifier.cc RunClassify."""
    signature = _find_signature(loaded, request.model_spec.signature_name)
    # GetClassificationSignatureDef: the signature is validated before anything else.
    input_name, output_names = _classification_io(signature, check)
    response = classification_pb2.ClassificationResponse()
    _fill_model_spec(response.model_spec, request.model_spec, version)
    examples = serialized_examples(request.input)
    outputs = loaded.run([(input_name, examples)], output_names)
    by_name = dict(zip(output_names, outputs, strict=True))
    classes = _output(by_name, signature, "classes")
    scores = _output(by_name, signature, "scores")
    batch = len(examples)
    if classes is not None:
        _check_matrix(classes, "classes", "DT_STRING", batch)
    if scores is not None:
        _check_matrix(scores, "scores", "DT_FLOAT", batch)
    if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
        raise invalid_argument(
            "Tensors class and score should match in dim_size(1). Got "
            f"{classes.shape[1]} vs. {scores.shape[1]}"
        )
    matrix = classes if classes is not None else scores
    num_classes = matrix.shape[1] if matrix is not None else 0
    for i in range(batch):
        classifications = response.result.classifications.add()
        for c in range(num_classes):
            entry = classifications.classes.add()
            if classes is not None:
                label = classes[i, c]
                entry.label = (
                    label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
                )
            if scores is not None:
                entry.score = float(scores[i, c])
    return response


def _output(by_name: dict[str, Any], signature: Any, alias: str) -> np.ndarray | None:
    """The fetched tensor for a signature output alias, if the signature has it."""
    if alias not in signature.outputs:
        return None
    value = by_name.get(signature.outputs[alias].name)
    return None if value is None else np.asarray(value)


def run_regress(request: Any, loaded: LoadedVersion, version: int, check: bool) -> Any:
    """regressor.cc RunRegress."""
    signature = _find_signature(loaded, request.model_spec.signature_name)
    # GetRegressionSignatureDef: the signature is validated before anything else.
    input_name, output_names = _regression_io(signature, check)
    response = regression_pb2.RegressionResponse()
    _fill_model_spec(response.model_spec, request.model_spec, version)
    examples = serialized_examples(request.input)
    (output,) = loaded.run([(input_name, examples)], output_names)
    output = np.asarray(output)
    batch = len(examples)
    if not (output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1)):
        raise invalid_argument(
            "Expected output Tensor shape to be either [batch_size] or [batch_size, 1] but got "
            + shape_debug_string(output)
        )
    if output.shape[0] != batch:
        raise invalid_argument(
            f"Input batch size did not match output batch size: {batch} vs. {output.shape[0]}"
        )
    if dtype_name(output) != "DT_FLOAT":
        raise invalid_argument(f"Expected output Tensor of DT_FLOAT.  Got: {dtype_name(output)}")
    if output.size != batch:
        raise invalid_argument(f"Expected output batch size to be {batch}.  Got: {output.size}")
    for value in output.reshape(-1):
        response.result.regressions.add().value = float(value)
    return response


def _fill_model_spec(target: Any, source: Any, version: int) -> None:
    """util.cc MakeModelSpec with the request's signature name (empty -> serving_default)."""
    target.name = source.name
    target.signature_name = source.signature_name or DEFAULT_SIGNATURE
    target.version.value = version
