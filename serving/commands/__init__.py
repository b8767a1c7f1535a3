"""Sub-command groups of the ``odontoscan`` CLI, one module per group."""
