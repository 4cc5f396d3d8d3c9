"""The engine's state on a Postgres database: checkpoints and the cost ledger (needs ``coord[postgres]``)."""
