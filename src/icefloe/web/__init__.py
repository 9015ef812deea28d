"""`icefloe serve`: one ASGI app (Starlette) for the HTTP API, the dashboard and /metrics.

- `auth`: bearer tokens from `serve.tokens` (stored hashed), scopes, the session cookie.
- `app`: `create_app(project)`, which mounts each part's routes on one Starlette app.

Thin like the CLI: every handler calls the same library functions (`icefloe.observe`,
`icefloe.Project`) the CLI calls; no second copy of the logic lives here.
"""
