"""Messaging Layer Security (RFC 9420) for group chats: sans-I/O, ciphersuite 1 only
(MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519), on `cryptography`.

One module per noun of the RFC, each citing its sections:

- `protocol.wire.tls` (in the wire layer because the relay reads a group message's
  header with it): the TLS presentation language as MLS uses it (section 2.1), with
  the variable-length vector header of section 2.1.2;
- `tree_math`: the array representation of left-balanced binary trees (section 4.1,
  appendix C);
- `cipher_suite`: the labelled primitives every other part is built from (section 5):
  ExpandWithLabel, DeriveSecret, DeriveTreeSecret, RefHash, SignWithLabel,
  EncryptWithLabel and the HPKE DeriveKeyPair of RFC 9180 section 7.1.3;
- `key_schedule` (8, 8.4, 8.5), `group_context` (8.1), `secret_tree` (9),
  `transcript` (8.2);
- `leaf_node` (5.3, 7.2), `key_package` (10), `proposals` (12.1, 12.4, 7.6),
  `framing` (6), `welcome` (12.4.3), `ratchet_tree` (7.1, 7.8, 7.9, 12.1);
- `protection` (6.1-6.3): signing, membership tags, PrivateMessage encryption;
- `treekem` (7.4-7.6): encapsulating and decapsulating UpdatePaths;
- `group` (12.4.2, 12.4.3.1): a member's state, joining, processing commits;
- `committing` (10, 11, 12.1, 12.4.1): KeyPackages, creating a group, proposals,
  commits and their Welcome, application messages.

Checked against the MLS working group's vectors (tests/protocol/e2e/mls/).
"""
