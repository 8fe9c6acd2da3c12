"""The web pages: the storage browser at ``/storage`` and the sessions page at
``/science-portal`` (Jinja2 templates, a little plain JavaScript, no build step).

Pages only read and render; every change a page makes goes to the services' own
endpoints (VOSpace nodes, transfers, files, versions, snapshots, packages) with the
page's CSRF token, so the one ACL policy and the one storage layer decide everything.
"""
