"""The `blindrelay` command: parsing and dispatch only, above every layer.

Each subcommand imports the package that does the work (client, server, conformance,
teaching) only when it runs, so `blindrelay serve` never loads end-to-end code and
`blindrelay send` never loads the relay.
"""
