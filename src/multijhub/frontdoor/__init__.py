"""multijhub front door: log users in and send them to the hub that runs their server.

Part of the ``multijhub`` wheel (root pyproject.toml) beside ``multijhub.core`` (the collection's
plugins/module_utils) and ``multijhub.hub``; the role ``redirector`` installs that wheel into the
front door's virtualenv. Served by gunicorn: ``multijhub.frontdoor.wsgi:app``.
"""
