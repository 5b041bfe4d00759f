#!/usr/bin/env python3
"""An independent Noise peer (the `noiseprotocol` package) for Cairn's interop test.

Plays the responder of Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b over stdin/stdout, one hex-encoded
message per line: reads message 1, writes message 2, reads message 3, then answers each transport
message with an encrypted "echo: " + its plaintext. Finally prints the handshake hash and the
initiator's static key it learned, as "hash <hex>" and "remote <hex>".

usage: noise_peer.py STATIC_PRIVATE_HEX PSK_HEX PROLOGUE_HEX ROUNDS
"""
import sys

from noise.connection import Keypair, NoiseConnection


def main():
    static, psk, prologue, rounds = bytes.fromhex(sys.argv[1]), bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3]), int(sys.argv[4])
    peer = NoiseConnection.from_name(b"Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b")
    peer.set_as_responder()
    peer.set_keypair_from_private_bytes(Keypair.STATIC, static)
    peer.set_psks(psk=psk)
    peer.set_prologue(prologue)
    peer.start_handshake()

    def receive():
        return bytes.fromhex(sys.stdin.readline().strip())

    def send(data):
        sys.stdout.write(data.hex() + "\n")
        sys.stdout.flush()

    peer.read_message(receive())
    send(peer.write_message(b"responder says hi"))
    handshake = peer.noise_protocol.handshake_state  # the library drops it once the handshake ends
    peer.read_message(receive())
    assert peer.handshake_finished
    for _ in range(rounds):
        send(peer.encrypt(b"echo: " + peer.decrypt(receive())))
    print("hash", peer.get_handshake_hash().hex())
    print("remote", handshake.rs.public_bytes.hex())
    sys.stdout.flush()


if __name__ == "__main__":
    main()
