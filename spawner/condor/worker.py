"""``python -m condorhub.spawner.condor.worker SETTINGS_JSON [--lane=NAME]``: the process that owns the htcondor2
bindings (``--lane`` is only there for ``ps``: which of the hub's lanes this process serves).

The hub starts one per lane (queries, actions; see :class:`.client.WorkerLane`) and talks to it over its
stdin/stdout, one JSON object per line, one request at a time; every answer repeats its request's id
(the hub matches answers by it and drops those whose caller has given up)::

    → {"id": 7, "method": "query_jobs", "args": ["CondorhubHub == \\"...\\""]}
    ← {"id": 7, "result": [{...job ad...}, ...]}      or      ← {"id": 7, "error": "schedd query failed: ..."}

It imports only the standard library, condorhub's client module and the bindings (not JupyterHub), so
it is up in a fraction of a second; its stderr is the hub's. It exits when the hub closes its stdin (after
the call it is running, if any: how the hub retires a process stuck on a call nobody waits for). When it
dies in the middle of a submission, the hub asks a fresh one whether the schedd took the job
(:meth:`.client.WorkerLane.submit`).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def main() -> int:
    from .client import CondorClient, CondorClientError, configure_htcondor

    settings = json.loads(sys.argv[1])
    configure_htcondor(
        settings.get("condor_config"),
        settings.get("collector"),
        settings.get("token_file"),
        settings.get("private_dir"),
    )
    client = CondorClient(collector=settings.get("collector"), schedd=settings.get("schedd"))
    out = sys.stdout
    for line in sys.stdin:
        request_id = None
        try:
            request = json.loads(line)
            request_id = request.get("id")
            method = request["method"]
            reply: dict[str, Any]
            if method == "ping":
                reply = {"result": os.getpid()}
            elif method in ("query_jobs", "query_slots", "job_history", "submit", "remove", "located_schedd_name"):
                reply = {"result": getattr(client, method)(*request.get("args", []))}
            else:
                reply = {"error": f"unknown method {method!r}"}
        except CondorClientError as err:
            reply = {"error": str(err)}
        except Exception as err:  # a bug here must not kill the lane silently
            reply = {"error": f"{type(err).__name__}: {err}"}
        reply["id"] = request_id
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
