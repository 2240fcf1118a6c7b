#!/usr/bin/env python3
"""An independent mco client, written from spec/PROTOCOL.md alone: builds a direct request,
signs it with a caller's key and token (files made by `mco keys client`), binds it to its
target nodes with an RFC 9162 Merkle tree, and prints each target's copy of the envelope,
one JSON line per node, on stdout. Needs only Python's standard library and `cryptography`.

usage: sign_request.py KEY_FILE TOKEN_FILE COLLECTIVE AGENT ACTION NODE [NODE...]
"""
import base64
import hashlib
import json
import sys
import time
import uuid

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def leaf(identity):
    return hashlib.sha256(b"\x00" + identity.encode()).digest()


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def mth(leaves):
    """Merkle tree hash of a list of leaf hashes (RFC 9162 2.1.1)."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node(mth(leaves[:k]), mth(leaves[k:]))


def path(m, leaves):
    """Audit path of leaf m, leaf side first (RFC 9162 2.1.3.1)."""
    if len(leaves) == 1:
        return []
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def main():
    key_file, token_file, collective, agent, action, *nodes = sys.argv[1:]
    seed = open(key_file).read().strip()
    prefix = "mco-ed25519-private:"
    assert seed.startswith(prefix), "not an mco private key file"
    key = Ed25519PrivateKey.from_private_bytes(b64url_decode(seed[len(prefix):]))
    token = open(token_file).read().strip()
    caller = json.loads(b64url_decode(token.split(".")[1]))["name"]
    targets = sorted(set(nodes))
    leaves = [leaf(n) for n in targets]
    request_id = uuid.uuid4().hex
    caller_hash = hashlib.sha256(caller.encode()).hexdigest()[:32]
    request = {
        "id": request_id,
        "collective": collective,
        "agent": agent,
        "action": action,
        "data": {},
        "filter": {"fact": [], "class": [], "identity": [], "agent": [agent], "compound": []},
        "caller": caller,
        "sender": "python-client",
        "time": int(time.time() * 1000),
        "ttl": 60,
        "reply_to": f"{collective}.reply.{caller_hash}.{request_id}",
        "targets": {"root": mth(leaves).hex(), "count": len(targets)},
    }
    body = json.dumps(request, separators=(",", ":"))
    signature = base64.b64encode(key.sign(body.encode())).decode()
    for index, name in enumerate(targets):
        target = {"index": index, "path": [h.hex() for h in path(index, leaves)]}
        # The request is embedded verbatim: the signature covers exactly these bytes.
        envelope = (
            '{"protocol":"mco.request.v1","request":' + body
            + ',"signature":' + json.dumps(signature)
            + ',"token":' + json.dumps(token)
            + ',"target":' + json.dumps(target, separators=(",", ":")) + "}"
        )
        print(json.dumps({"node": name, "reply_to": request["reply_to"], "envelope": envelope}))


if __name__ == "__main__":
    main()
