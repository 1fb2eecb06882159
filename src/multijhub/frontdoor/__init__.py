"""multijhub front door: log users in and send them to the hub that runs their server.

Deployed by the role ``redirector`` into a venv beside ``multijhub_core`` (a verbatim copy
of the collection's plugins/module_utils). Served by gunicorn: ``multijhub_frontdoor.wsgi:app``.
"""
