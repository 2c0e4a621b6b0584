"""The teaching demo: Alice, Bob and what the relay sees; hostile-relay scenarios."""
