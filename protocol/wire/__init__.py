"""What crosses the network between clients and the relay: encodings, public keys,
prekey records, usernames, frames and the conversation rules (`connection`).

Everything here is public data. The relay may import this package and nothing else
of `protocol`; it never sees a private key or anything it could decrypt.
"""
