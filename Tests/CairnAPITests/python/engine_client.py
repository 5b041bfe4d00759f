"""A storage engine's use of the Cairn HTTP API, with `requests`: keep a manifest with
optimistic updates (compare-and-set), list a bucket page by page, and follow the change feed,
resuming from a stored cursor. Run by EngineClientTests.swift against a live server:

    python3 engine_client.py BASE_URL CHANGE_EVENT_SCHEMA

Exits 0 when every step behaved; an AssertionError (exit 1) names the step that did not.
"""
import json
import sys

import jsonschema
import requests

BASE = sys.argv[1].rstrip("/")
SCHEMA = json.load(open(sys.argv[2]))
HEARTBEAT = {"status": "HEARTBEAT"}


def problem(response, status, code):
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "https://cairn.dev/problems/" + code, body
    return body


def feed_lines(params, stream=False):
    return requests.get(BASE + "/v1/changes", params=params, stream=stream, timeout=30)


session = requests.Session()
status = session.get(BASE + "/v1/status").json()
start_cursor = status["last_cursor"]

# 1. Create the manifest only if nobody has (If-None-Match: *).
manifest = BASE + "/v1/kv/tables/orders%2Fmanifest"
created = session.put(manifest, data=b'{"version":1}', headers={"If-None-Match": "*"})
assert created.status_code == 201, created.text
entry = created.headers["Cairn-Entry"]
problem(session.put(manifest, data=b"x", headers={"If-None-Match": "*"}), 412, "conditionFailed")

# 2. Read it; a conditional read of the same version is a 304.
got = session.get(manifest)
assert got.content == b'{"version":1}' and got.headers["Cairn-Entry"] == entry
assert session.get(manifest, headers={"If-None-Match": got.headers["ETag"]}).status_code == 304

# 3. Optimistic update: read, compute, write if still current; a stale writer is told who won.
updated = session.put(manifest, data=b'{"version":2}', headers={"If-Match": entry})
assert updated.status_code == 200, updated.text
stale = problem(session.put(manifest, data=b'{"version":3}', headers={"If-Match": entry}), 412, "conditionFailed")
assert stale["current_entry"] == updated.headers["Cairn-Entry"]
assert session.get(manifest).content == b'{"version":2}'

# 4. List a bucket page by page.
for i in range(23):
    assert session.put(f"{BASE}/v1/kv/segments/seg-{i:03d}", data=bytes([i])).status_code == 200
keys, cursor = [], None
while True:
    params = {"prefix": "seg-", "limit": 5} | ({"cursor": cursor} if cursor else {})
    page = session.get(BASE + "/v1/kv/segments", params=params).json()
    assert len(page["keys"]) <= 5
    keys += [k["key"] for k in page["keys"]]
    cursor = page["next_cursor"]
    if cursor is None:
        break
assert keys == [f"seg-{i:03d}" for i in range(23)], keys
problem(session.get(BASE + "/v1/kv/segments", params={"limit": 0}), 400, "invalidRequest")

# 5. The feed: every line follows the change-event schema; remember the last cursor.
lines = [json.loads(line) for line in feed_lines({"follow": "false", "cursor": start_cursor}).iter_lines() if line]
assert len(lines) == 2 + 23, len(lines)
for line in lines:
    jsonschema.validate(line, SCHEMA)
assert [l["key"] for l in lines[:2]] == ["orders/manifest"] * 2
stored_cursor = lines[-1]["cursor"]

# 6. "Restart": resume following from the stored cursor while another writer works.
with feed_lines({"cursor": stored_cursor}, stream=True) as follow:
    assert follow.headers["Content-Type"] == "application/x-ndjson"
    session.put(BASE + "/v1/kv/tables/new", data=b"n")
    for raw in follow.iter_lines():
        if not raw or json.loads(raw) == HEARTBEAT:
            continue
        change = json.loads(raw)
        jsonschema.validate(change, SCHEMA)
        assert change["cursor"] == stored_cursor + 1 and change["key"] == "new" and change["op"] == "c"
        break

# 7. The same over Server-Sent Events, resumed with Last-Event-ID.
events = requests.get(BASE + "/v1/changes", params={"follow": "false"},
                      headers={"Accept": "text/event-stream", "Last-Event-ID": str(stored_cursor)}, timeout=30)
assert events.headers["Content-Type"] == "text/event-stream"
blocks = [b for b in events.text.split("\n\n") if b]
assert len(blocks) == 1, blocks
fields = dict(line.split(": ", 1) for line in blocks[0].split("\n"))
assert fields["id"] == str(stored_cursor + 1) and fields["event"] == "change"
jsonschema.validate(json.loads(fields["data"]), SCHEMA)

# 8. Delete with the precondition; the key is then gone.
current = session.get(manifest).headers["Cairn-Entry"]
assert session.delete(manifest, headers={"If-Match": current}).status_code == 200
problem(session.get(manifest), 404, "notFound")
print("engine client: all steps passed")
