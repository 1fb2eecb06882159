"""Placement study: a day of JupyterHub users placed on N nodes by several policies.

Modules: ``workload`` draws the trace, ``policies`` places servers (multijhub's
policy is the front door's own ``place_user`` over the core's ``choose_node``),
``engine`` replays a trace under a policy and measures it, ``plot`` draws it.
"""
