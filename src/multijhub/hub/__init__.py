"""multijhub's extensions to JupyterHub, installed on every hub node."""
