"""Generated sample data for the tests, the demo and the benchmarks: a parameter scan on disk, TensorBoard logs.

Data is made, never downloaded. Not packaged: a user's server has no use for it.
"""
