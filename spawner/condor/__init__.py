"""Jupyter servers as HTCondor jobs: the spawner and what it is built from.

=================  =====================================================================================
``spawner``        HTCondorSpawner (batchspawner's base, htcondor2 bindings, no sudo)
``queue``          HTCondorQueue: one shared, cached view of the queue, one schedd query per cycle
``jobs``           what a job ad means (phase, node, why it waits or ended); pure functions
``client``         the few htcondor2 calls, blocking, run in thread executors by ``queue``
``submit``         the job's submit description (no secrets in it)
``secretfile``     the server's secrets in a 0600 file in the user's home, written as the user
``launcher``       the job's entry point on the node (standard library only)
``api``            the hub API endpoint the launcher reports its port to
``reconcile``      at hub start: remove this hub's jobs that no server owns
=================  =====================================================================================

This package imports nothing at import time, so the launcher starts fast on the execute node.
"""
