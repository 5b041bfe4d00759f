"""Schemathesis hooks for the Cairn API run (loaded through SCHEMATHESIS_HOOKS).

The change feed follows new changes by default and never ends on its own; schemathesis reads
whole responses, so its requests to /v1/changes ask for follow=false (the streaming itself is
covered by the Swift feed tests and engine_client.py).
"""
import schemathesis


@schemathesis.hook
def map_query(ctx, query):
    if ctx.operation.path == "/v1/changes":
        query = dict(query or {})
        query["follow"] = "false"
    return query
