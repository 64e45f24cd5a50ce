"""One module per ``vidid`` subcommand; each exposes ``register(subparsers)``."""
