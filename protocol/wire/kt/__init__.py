"""Key transparency building blocks (docs/PROTOCOL.md section 19): the RFC 9162 Merkle
log, C2SP signed notes and tlog checkpoints, the RFC 9381 VRF, commitments to
directory values and the prefix tree that maps VRF labels to them. Sans-I/O and public data
only, so the relay may import all of it."""
