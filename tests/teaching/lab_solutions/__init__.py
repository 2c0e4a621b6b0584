"""Reference solutions of the labs (teaching/labs), for the tests only: not shipped."""
