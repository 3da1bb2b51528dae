"""``python -m condorhub.spawner.condor.worker SETTINGS_JSON``: the process that owns the htcondor2 bindings.

The hub starts one per lane (queries, actions; see :class:`.client.WorkerLane`) and talks to it over its
stdin/stdout, one JSON object per line::

    → {"method": "query_jobs", "args": ["CondorhubHub == \\"...\\""]}
    ← {"result": [{...job ad...}, ...]}        or        ← {"error": "schedd query failed: ..."}

It imports only the standard library, condorhub's client module and the bindings (not JupyterHub), so
it is up in a fraction of a second; its stderr is the hub's. It exits when the hub closes its stdin.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> int:
    from .client import CondorClient, CondorClientError, configure_htcondor

    settings = json.loads(sys.argv[1])
    configure_htcondor(
        settings.get("condor_config"), settings.get("collector"), settings.get("token_file"), settings.get("private_dir")
    )
    client = CondorClient(collector=settings.get("collector"), schedd=settings.get("schedd"))
    out = sys.stdout
    for line in sys.stdin:
        try:
            request = json.loads(line)
            method = request["method"]
            if method == "ping":
                reply = {"result": os.getpid()}
            elif method in ("query_jobs", "query_slots", "job_history", "submit", "remove"):
                reply = {"result": getattr(client, method)(*request.get("args", []))}
            else:
                reply = {"error": f"unknown method {method!r}"}
        except CondorClientError as err:
            reply = {"error": str(err)}
        except Exception as err:  # a bug here must not kill the lane silently
            reply = {"error": f"{type(err).__name__}: {err}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
