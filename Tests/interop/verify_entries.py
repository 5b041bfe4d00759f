#!/usr/bin/env python3
"""Independent verifier of Cairn entry test vectors.

Written from docs/entry-format.md (not from the Swift sources): a strict decoder and an encoder
of the canonical entry body, BLAKE2b-256 ids (hashlib) and Ed25519 signatures (PyNaCl).

    python3 Tests/interop/verify_entries.py Fixtures/entries/vectors.json [-v]

For every positive vector: decodes the body and compares every field with the JSON, encodes the
JSON fields and compares the bytes, recomputes the id, checks the key derivation and that the
signature verifies (and is reproduced by signing), checks the framed form and the value
reference. Every negative vector must be rejected with the expected error kind; every
bad-signature vector must decode but fail verification. The last line is
"N passed, M failed"; the exit status is non-zero on any failure.
"""

import hashlib
import json
import struct
import sys

try:
    import nacl.exceptions
    import nacl.signing
except ImportError:  # pragma: no cover - reported to the Swift test that runs this script
    sys.stderr.write("verify_entries.py needs PyNaCl: pip install pynacl (.ci/run installs it)\n")
    sys.exit(3)

# Limits, section 6 of the spec.
VERSION = 1
MAX_BODY = 1 << 20
MAX_PARENTS = 16
MAX_KEY = 1024
MAX_VALUE = 64 << 20
HLC_LIMIT = 1 << 63

KINDS = {1: "genesis", 2: "put", 3: "delete", 4: "merge", 5: "add-writer", 6: "revoke-writer"}
KIND_CODES = {name: code for code, name in KINDS.items()}
ROLES = {0: "writer", 1: "admin"}
ROLE_CODES = {name: code for code, name in ROLES.items()}


class FormatError(Exception):
    """A rejection, with the error kind of spec section 10 and its details."""

    def __init__(self, kind, **detail):
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail

    def __str__(self):
        return f"{self.kind} {self.detail}" if self.detail else self.kind


def blake2b_256(data):
    return hashlib.blake2b(data, digest_size=32).digest()


class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n, field):
        if len(self.data) - self.pos < n:
            raise FormatError("truncated", field=field)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def uint(self, width, field):
        return int.from_bytes(self.take(width, field), "big")

    def text(self, field, prefix_width):
        length = self.uint(prefix_width, field + " length")
        if length == 0:
            raise FormatError("invalidText", field=field, reason="empty")
        raw = self.take(length, field)
        try:
            text = raw.decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise FormatError("invalidText", field=field, reason="not valid UTF-8") from None
        return text

    def bucket(self):
        text = self.text("bucket", 1)
        if "/" in text:
            raise FormatError("invalidText", field="bucket", reason="contains '/'")
        return text

    def key(self):
        text = self.text("key", 2)
        if len(text.encode("utf-8")) > MAX_KEY:
            raise FormatError("invalidText", field="key", reason=f"longer than {MAX_KEY} bytes")
        return text


def strictly_ascending(items):
    return all(a < b for a, b in zip(items, items[1:]))


def hlc_fields(raw):
    return {"raw": str(raw), "wall_ms": raw >> 16, "counter": raw & 0xFFFF}


def read_grant(r):
    key = r.take(32, "writer key").hex()
    code = r.uint(1, "writer role")
    if code not in ROLES:
        raise FormatError("unknownRole", code=code)
    return {"key": key, "role": ROLES[code]}


def decode_body(body):
    """Decodes canonical body bytes into the vectors' "fields" shape, or raises FormatError."""
    if len(body) > MAX_BODY:
        raise FormatError("bodyTooLarge", bytes=len(body))
    r = Reader(body)
    version = r.uint(1, "version")
    if version != VERSION:
        raise FormatError("unsupportedVersion", version=version)
    code = r.uint(1, "kind")
    if code not in KINDS:
        raise FormatError("unknownKind", code=code)
    kind = KINDS[code]
    hlc = r.uint(8, "hlc")
    author = r.take(32, "author")
    parent_count = r.uint(1, "parent count")
    if parent_count > MAX_PARENTS:
        raise FormatError("tooManyParents", count=parent_count)
    parents = [r.take(32, "parent") for _ in range(parent_count)]
    if not strictly_ascending(parents):
        raise FormatError("parentsNotSortedUnique")

    if kind == "genesis":
        name = r.text("log name", 1)
        count = r.uint(1, "writer count")
        writers = [read_grant(r) for _ in range(count)]
        keys = [bytes.fromhex(w["key"]) for w in writers]
        if count == 0 or not strictly_ascending(keys):
            raise FormatError("writersNotSortedUnique")
        if {"key": author.hex(), "role": "admin"} not in writers:
            raise FormatError("genesisAuthorNotAdmin")
        payload = {"name": name, "writers": writers}
    elif kind in ("put", "delete"):
        bucket = r.bucket()
        key = r.key()
        payload = {"bucket": bucket, "key": key}
        if kind == "put":
            length = r.uint(4, "value length")
            if length > MAX_VALUE:
                raise FormatError("valueTooLarge", length=length)
            payload["value_length"] = length
            payload["value_digest"] = r.take(32, "value digest").hex()
    elif kind == "merge":
        decisions = []
        previous = None
        for _ in range(r.uint(2, "decision count")):
            bucket = r.bucket()
            key = r.key()
            # Order by the pair of byte strings: bucket first, then key (spec 4.4).
            current = (bucket.encode("utf-8"), key.encode("utf-8"))
            if previous is not None and not previous < current:
                raise FormatError("decisionsNotSortedUnique")
            previous = current
            winner = r.take(32, "merge winner")
            losers = [r.take(32, "merge loser") for _ in range(r.uint(1, "loser count"))]
            if not losers or not strictly_ascending(losers) or winner in losers:
                raise FormatError("losersInvalid")
            decisions.append({"bucket": bucket, "key": key, "winner": winner.hex(),
                              "losers": [l.hex() for l in losers]})
        payload = {"decisions": decisions}
    elif kind == "add-writer":
        payload = read_grant(r)
    else:  # revoke-writer
        key = r.take(32, "revoked key").hex()
        start = r.uint(8, "revoked from")
        if start >= HLC_LIMIT:
            raise FormatError("invalidHLC", value=str(start))
        payload = {"key": key, "from": hlc_fields(start)}

    if r.pos != len(body):
        raise FormatError("trailingBytes", count=len(body) - r.pos)
    if hlc >= HLC_LIMIT:
        raise FormatError("invalidHLC", value=str(hlc))
    if kind == "genesis" and parents:
        raise FormatError("genesisHasParents")
    if kind != "genesis" and not parents:
        raise FormatError("missingParents")
    return {
        "version": version,
        "kind": kind,
        "hlc": hlc_fields(hlc),
        "author": author.hex(),
        "parents": [p.hex() for p in parents],
        "payload": payload,
    }


# --- encoder (from the JSON fields) -----------------------------------------------------------

def text_bytes(text, prefix_width, max_len):
    raw = text.encode("utf-8")
    if not 1 <= len(raw) <= max_len:
        raise ValueError(f"text length {len(raw)} out of range")
    return len(raw).to_bytes(prefix_width, "big") + raw


def bucket_key_bytes(bucket, key):
    if "/" in bucket:
        raise ValueError("bucket contains '/'")
    return text_bytes(bucket, 1, 255) + text_bytes(key, 2, MAX_KEY)


def hlc_value(h):
    raw = int(h["raw"])
    if raw != (h["wall_ms"] << 16 | h["counter"]) or raw >= HLC_LIMIT:
        raise ValueError(f"bad hlc {h}")
    return raw


def encode_body(fields):
    """Encodes the vectors' "fields" shape; raises ValueError if they break a rule."""
    kind = fields["kind"]
    parents = [bytes.fromhex(p) for p in fields["parents"]]
    if not strictly_ascending(parents) or len(parents) > MAX_PARENTS:
        raise ValueError("parents")
    if (kind == "genesis") != (not parents):
        raise ValueError("parent count")
    out = bytearray([fields["version"], KIND_CODES[kind]])
    out += struct.pack(">Q", hlc_value(fields["hlc"]))
    out += bytes.fromhex(fields["author"])
    out.append(len(parents))
    for p in parents:
        out += p
    p = fields["payload"]
    if kind == "genesis":
        out += text_bytes(p["name"], 1, 255)
        keys = [bytes.fromhex(w["key"]) for w in p["writers"]]
        if not 1 <= len(keys) <= 255 or not strictly_ascending(keys):
            raise ValueError("writers")
        if {"key": fields["author"], "role": "admin"} not in p["writers"]:
            raise ValueError("author not admin")
        out.append(len(keys))
        for w in p["writers"]:
            out += bytes.fromhex(w["key"]) + bytes([ROLE_CODES[w["role"]]])
    elif kind in ("put", "delete"):
        out += bucket_key_bytes(p["bucket"], p["key"])
        if kind == "put":
            if p["value_length"] > MAX_VALUE:
                raise ValueError("value length")
            out += struct.pack(">I", p["value_length"]) + bytes.fromhex(p["value_digest"])
    elif kind == "merge":
        decisions = p["decisions"]
        order = [(d["bucket"].encode("utf-8"), d["key"].encode("utf-8")) for d in decisions]
        if len(decisions) > 0xFFFF or not strictly_ascending(order):
            raise ValueError("decisions")
        out += struct.pack(">H", len(decisions))
        for d in decisions:
            winner = bytes.fromhex(d["winner"])
            losers = [bytes.fromhex(l) for l in d["losers"]]
            if not 1 <= len(losers) <= 255 or not strictly_ascending(losers) or winner in losers:
                raise ValueError("losers")
            out += bucket_key_bytes(d["bucket"], d["key"]) + winner + bytes([len(losers)])
            for l in losers:
                out += l
    elif kind == "add-writer":
        out += bytes.fromhex(p["key"]) + bytes([ROLE_CODES[p["role"]]])
    elif kind == "revoke-writer":
        out += bytes.fromhex(p["key"]) + struct.pack(">Q", hlc_value(p["from"]))
    else:
        raise ValueError(f"kind {kind}")
    if len(out) > MAX_BODY:
        raise ValueError("body too large")
    return bytes(out)


def read_framed(data):
    """Reads one framed entry: u32 body length || body || 64-byte signature."""
    if len(data) < 4:
        raise FormatError("truncated", field="entry length")
    length = int.from_bytes(data[:4], "big")
    if length > MAX_BODY:
        raise FormatError("bodyTooLarge", bytes=length)
    if len(data) < 4 + length + 64:
        raise FormatError("truncated", field="entry body or signature")
    return data[4:4 + length], data[4 + length:4 + length + 64], 4 + length + 64


def signature_valid(public_key, message, signature):
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
        return True
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False


# --- checks ------------------------------------------------------------------------------------

def check_positive(v):
    problems = []
    body = bytes.fromhex(v["body_hex"])
    signature = bytes.fromhex(v["signature_hex"])
    entry_id = blake2b_256(body)
    try:
        decoded = decode_body(body)
        if decoded != v["fields"]:
            problems.append(f"decoded fields differ:\n  decoded {decoded}\n  json    {v['fields']}")
    except FormatError as e:
        problems.append(f"decoder rejects a valid body: {e}")
    try:
        encoded = encode_body(v["fields"])
        if encoded != body:
            problems.append(f"encoding the fields gives {encoded.hex()}")
    except (ValueError, KeyError) as e:
        problems.append(f"cannot encode the fields: {e!r}")
    if entry_id.hex() != v["id_hex"]:
        problems.append(f"id is {entry_id.hex()}")
    signing_key = nacl.signing.SigningKey(bytes.fromhex(v["signing_key_seed"]))
    public_key = bytes(signing_key.verify_key)
    if public_key.hex() != v["public_key"] or v["fields"]["author"] != v["public_key"]:
        problems.append(f"seed gives public key {public_key.hex()}")
    if not signature_valid(bytes.fromhex(v["fields"]["author"]), entry_id, signature):
        problems.append("signature does not verify")
    if signing_key.sign(entry_id).signature != signature:
        problems.append("signing the id does not reproduce the signature")
    framed = bytes.fromhex(v["framed_hex"])
    if framed != struct.pack(">I", len(body)) + body + signature:
        problems.append("framed form differs")
    else:
        fbody, fsig, used = read_framed(framed)
        if (fbody, fsig, used) != (body, signature, len(framed)):
            problems.append("reading the frame back differs")
    payload = v["fields"]["payload"]
    if v["fields"]["kind"] == "put":
        if "value_hex" in v:
            value = bytes.fromhex(v["value_hex"])
            length, digest = len(value), blake2b_256(value)
        elif "value_repeat" in v:
            rep = v["value_repeat"]
            hasher = hashlib.blake2b(digest_size=32)
            chunk = bytes.fromhex(rep["byte"]) * (1 << 20)
            left = rep["count"]
            while left > 0:
                hasher.update(chunk[:min(left, len(chunk))])
                left -= len(chunk)
            length, digest = rep["count"], hasher.digest()
        else:
            problems.append("a put vector without its value")
            length, digest = None, None
        if length is not None and (length != payload["value_length"] or digest.hex() != payload["value_digest"]):
            problems.append("value does not match its reference")
    elif "value_hex" in v or "value_repeat" in v:
        problems.append("value given for a non-put")
    return problems


# Details the spec defines for each error kind (section 10); `truncated`'s field name is
# implementation-specific and not compared.
COMPARED_DETAILS = {
    "trailingBytes": ["count"], "bodyTooLarge": ["bytes"], "unsupportedVersion": ["version"],
    "unknownKind": ["code"], "invalidHLC": ["value"], "tooManyParents": ["count"],
    "invalidText": ["field", "reason"], "valueTooLarge": ["length"], "unknownRole": ["code"],
}


def check_negative(v):
    expected = v["error"]
    try:
        decoded = decode_body(bytes.fromhex(v["body_hex"]))
    except FormatError as e:
        problems = []
        if e.kind != expected["kind"]:
            problems.append(f"rejected as {e}, expected {expected['kind']}")
        else:
            for name in COMPARED_DETAILS.get(e.kind, []):
                if e.detail.get(name) != expected.get(name):
                    problems.append(f"{name} is {e.detail.get(name)!r}, expected {expected.get(name)!r}")
        return problems
    return [f"accepted (as {decoded['kind']}), expected {expected['kind']}"]


def check_bad_signature(v):
    body = bytes.fromhex(v["body_hex"])
    try:
        decoded = decode_body(body)
    except FormatError as e:
        return [f"body does not decode: {e}"]
    problems = []
    entry_id = blake2b_256(body)
    if entry_id.hex() != v["id_hex"]:
        problems.append(f"id is {entry_id.hex()}")
    if decoded["author"] != v["public_key"]:
        problems.append("author differs from public_key")
    if signature_valid(bytes.fromhex(decoded["author"]), entry_id, bytes.fromhex(v["signature_hex"])):
        problems.append("signature verifies but must not")
    return problems


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("-")]
    verbose = "-v" in argv[1:]
    if len(args) != 1:
        sys.stderr.write(__doc__)
        return 2
    with open(args[0], encoding="utf-8") as f:
        vectors = json.load(f)
    if vectors.get("format") != "cairn-entry-v1":
        print(f"unexpected format {vectors.get('format')!r}")
        return 1
    passed = failed = 0
    groups = [("positive", check_positive), ("negative", check_negative), ("bad_signatures", check_bad_signature)]
    for group, check in groups:
        if not vectors.get(group):
            print(f"FAIL {group}: no vectors")
            failed += 1
            continue
        for v in vectors[group]:
            problems = check(v)
            if problems:
                failed += 1
                print(f"FAIL {group}/{v['name']}:")
                for p in problems:
                    print(f"  {p}")
            else:
                passed += 1
                if verbose:
                    print(f"ok   {group}/{v['name']}")
    kinds = {v["fields"]["kind"] for v in vectors["positive"]}
    if kinds != set(KINDS.values()):
        failed += 1
        print(f"FAIL coverage: positive vectors lack kinds {sorted(set(KINDS.values()) - kinds)}")
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
