"""multijhub: one package for all of multijhub's Python code (built by the root pyproject.toml).

- ``multijhub.core``: the rules (plugins/module_utils of the collection, its single source; the
  Ansible modules and the lookup import the same files as ``ansible_collections...module_utils``);
- ``multijhub.frontdoor``: the front door (Flask under gunicorn), installed by the role ``redirector``;
- ``multijhub.hub``: JupyterHub's and the single-user servers' extensions, installed by the role
  ``jupyterhub`` (and registered through entry points: ``jupyterhub.authenticators``,
  ``jupyterhub.spawners``, ``jupyter_client.kernel_provisioners``).
"""
