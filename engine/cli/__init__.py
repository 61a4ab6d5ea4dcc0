"""The ``sigtrade`` command line: one app, subcommands by verb."""
