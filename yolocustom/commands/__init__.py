"""Subcommands. Each module exposes ``register(app)`` and imports heavy libraries only inside its command body."""
