"""Sample TensorBoard logs (scalars written with TensorBoard's own event writer: no TensorFlow needed),
for the demo, the tests and the benchmark.

    python -m devstack.samples.tensorboard LOGDIR
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path


def write_scalars(logdir: Path, runs=("lr_0.01", "lr_0.1"), steps: int = 50) -> list[Path]:
    """One event file per run with ``loss`` and ``accuracy`` curves; returns the run folders."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    folders = []
    for n, run in enumerate(runs):
        folder = Path(logdir) / run
        writer = EventFileWriter(str(folder))
        for step in range(steps):
            loss = math.exp(-step / (10 + 10 * n)) + 0.05
            values = [
                summary_pb2.Summary.Value(tag="loss", simple_value=loss),
                summary_pb2.Summary.Value(tag="accuracy", simple_value=1 - loss / 2),
            ]
            writer.add_event(
                event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=values))
            )
        writer.close()
        folders.append(folder)
    return folders


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print("\n".join(str(f) for f in write_scalars(Path(sys.argv[1]))))
