"""Messaging Layer Security (RFC 9420) for group chats: sans-I/O, ciphersuite 1 only
(MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519), on `cryptography`.

One module per noun of the RFC, each citing its sections:

- `tls`: the TLS presentation language as MLS uses it (section 2.1), with the
  variable-length vector header of section 2.1.2;
- `tree_math`: the array representation of left-balanced binary trees (section 4.1,
  appendix C);
- `cipher_suite`: the labelled primitives every other part is built from (section 5):
  ExpandWithLabel, DeriveSecret, DeriveTreeSecret, RefHash, SignWithLabel,
  EncryptWithLabel and the HPKE DeriveKeyPair of RFC 9180 section 7.1.3.

Checked against the MLS working group's vectors (tests/protocol/e2e/mls/).
"""
