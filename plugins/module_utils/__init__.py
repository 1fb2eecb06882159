"""multijhub core: the rules for finding a user's Jupyter server node.

Plain Python without Ansible imports. Used by the module ``jupyter_servers`` (packaged by
AnsiballZ), by the lookup ``user_node`` on the controller, and copied verbatim by the
``redirector`` role onto the front door as the package ``multijhub_core``.
"""
