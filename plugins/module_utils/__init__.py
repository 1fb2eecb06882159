"""multijhub core: the rules for finding a user's Jupyter server node.

Plain Python without Ansible imports. Used by the module ``jupyter_servers`` (packaged by
AnsiballZ), by the lookup ``user_node`` on the controller, and shipped in the ``multijhub``
wheel (root pyproject.toml) as the package ``multijhub.core`` for the front door and the hubs.
Its modules import each other relatively, so both names work from the same files.
"""
