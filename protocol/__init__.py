"""blindrelay's protocol, sans-I/O, in two layers that state the project's claim.

- `protocol.wire`: what crosses the network and all the relay may import: the codec,
  public-key encodings and signature checks, prekey records and bundles, usernames,
  frames, and the client<->relay conversation as a state machine.
- `protocol.e2e`: what only endpoints run: private keys, PQXDH, the Double Ratchet,
  padding, sealed sender, message content, safety numbers and the session record.

Neither layer opens a socket or a file or reads a clock it is not given: every
function takes bytes (and, where needed, a random source or the current time) and
returns bytes, plain values or typed events. The relay imports `protocol.wire` and
never `protocol.e2e` (tests/test_layering.py), so "the relay cannot decrypt" is a
rule about one folder. docs/PROTOCOL.md is the byte-exact source of truth.
"""
