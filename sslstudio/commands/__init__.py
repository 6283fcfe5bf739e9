"""One module per CLI subcommand: HELP-free `add_arguments(parser)` and `run(args) -> int`."""
