"""Products for testers: check another relay, or another implementation, against
blindrelay's specification (docs/PROTOCOL.md).

- `conformance.relay`: black-box checks of any relay, given its URL
  (`blindrelay conformance URL`); its probe is a thin shell over the sans-I/O
  `protocol.wire.connection.ClientConnection`.
- `conformance.vectors`: the deterministic test vectors as package data, their loader
  and checker, and the generator that makes them.
- `conformance.drbg`: the one deterministic random source the vectors are made with.

It imports `protocol.wire` and the key pairs of `protocol.e2e` (to sign what a client
must sign), never `client` or `server`: it is a black-box tester.
"""
