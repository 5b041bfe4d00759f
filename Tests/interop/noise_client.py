#!/usr/bin/env python3
"""Dials a running Cairn sync node with an independent Noise implementation (`noiseprotocol`).

Plays the initiator of Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b (prologue "cairn-sync/1") over TCP,
frames being a big-endian u16 length and a Noise message, as ARCHITECTURE.md describes. Its static
key is derived from a fresh Ed25519 key (PyNaCl), as a Cairn node's is. After the handshake it
decrypts the node's hello, checks that the node's Noise static key is the X25519 form of the node
key the hello names, answers with a hello of its own, and decrypts the node's next message (its
heads). Prints one JSON object.

usage: noise_client.py HOST PORT NETWORK_SECRET_HEX
"""
import json
import socket
import struct
import sys

from nacl.bindings import (crypto_sign_ed25519_pk_to_curve25519, crypto_sign_ed25519_sk_to_curve25519,
                           crypto_sign_keypair)
from noise.connection import Keypair, NoiseConnection


def read_exactly(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


def read_frame(sock):
    (length,) = struct.unpack(">H", read_exactly(sock, 2))
    return read_exactly(sock, length)


def write_frame(sock, data):
    sock.sendall(struct.pack(">H", len(data)) + data)


def main():
    host, port, psk = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
    ed_public, ed_secret = crypto_sign_keypair()
    noise = NoiseConnection.from_name(b"Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b")
    noise.set_as_initiator()
    noise.set_keypair_from_private_bytes(Keypair.STATIC, crypto_sign_ed25519_sk_to_curve25519(ed_secret))
    noise.set_psks(psk=psk)
    noise.set_prologue(b"cairn-sync/1")
    noise.start_handshake()

    sock = socket.create_connection((host, port), timeout=90)
    write_frame(sock, noise.write_message())
    handshake = noise.noise_protocol.handshake_state  # the library drops it once the handshake ends
    noise.read_message(read_frame(sock))
    write_frame(sock, noise.write_message())
    assert noise.handshake_finished
    remote_static = handshake.rs.public_bytes

    # One message per frame here: a flag byte (1 = last chunk) then the message.
    hello = noise.decrypt(read_frame(sock))
    assert hello[0] == 1 and hello[1] == 1, "expected a one-chunk hello"
    min_version, max_version = struct.unpack(">HH", hello[2:6])
    log_id, node_key = hello[6:38], hello[38:70]

    mine = bytes([1, 1]) + struct.pack(">HH", 1, 1) + log_id + ed_public + struct.pack(">H", 0)
    write_frame(sock, noise.encrypt(mine))
    after_hello = noise.decrypt(read_frame(sock))
    sock.close()
    print(json.dumps({
        "min_version": min_version,
        "max_version": max_version,
        "log_id": log_id.hex(),
        "node_key": node_key.hex(),
        "static_key_bound": crypto_sign_ed25519_pk_to_curve25519(node_key) == remote_static,
        "second_message_type": after_hello[1],
    }))


if __name__ == "__main__":
    main()
