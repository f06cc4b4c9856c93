"""`GET /backends`: every TF Serving target, its replicas and what each one serves.

For operators: which replicas the gateway reaches and which model versions each has
(during a rolling update they differ for a while). It names backend addresses, so unlike
the probes it needs an API key when keys are set. It reads the replica monitor's last
poll (every `tf_status_poll_seconds`): it never calls a backend.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from clients.replica_view import TargetView
from gateway.codec.encode_model import version_statuses
from gateway.dataplane import DataPlane
from routers.errors import JSON

router = APIRouter(tags=["Health"])


@router.get(
    "/backends",
    summary="TF Serving targets, their replicas, and the model versions on each",
)
async def backends(request: Request) -> Response:
    """Each target with `checked` (a poll has ended), its resolution error if any, and per
    replica: `reachable`, why not, and every model's version states as that replica says."""
    dataplane: DataPlane = request.app.state.dataplane
    body = {"backends": [_target_json(view) for view in dataplane.replica_views()]}
    return Response(orjson.dumps(body), media_type=JSON)


def _target_json(view: TargetView) -> dict[str, Any]:
    return {
        "target": view.target,
        "checked": view.checked,
        "error": view.error,
        "replicas": [
            {
                "address": replica.address,
                "reachable": replica.reachable,
                "error": replica.error,
                "models": {
                    name: version_statuses(statuses) for name, statuses in replica.models.items()
                },
            }
            for replica in view.replicas
        ],
    }
