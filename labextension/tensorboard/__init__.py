"""TensorBoard manager: TensorBoard subprocesses per log directory, proxied behind the Lab server's auth."""
