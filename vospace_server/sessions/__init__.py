"""Compute sessions with skaha's API (CANFAR's session service), at ``/skaha/v1`` and ``/skaha/v0``.

model.py      the vocabulary: types, status names, session JSON
store.py      session rows and events in the metadata database
catalogue.py  the image catalogue (images.toml): trusted repositories, types, how to run
context.py    resource options, flexible vs fixed sessions
launch.py     the parameters of a launch, checked
service.py    what each request means (no HTTP)
api.py        the HTTP routes and VOSI
hosts.py      every session's app on a host (browser origin) of its own: <id>.<session_domain>
tickets.py    single-use tickets from the platform and the session host's pass cookie
entry.py      /session-ticket/<id> (platform), /ticket (session host), old app paths redirected
proxy.py      /session/<type>/<id>/... on the session's host: the only way to its app
upstream.py   the proxy's connections to an app (its checked socket, or its Service)
runners/      local (bubblewrap sandboxes) and kubernetes (Jobs), behind one Protocol
"""
