"""odontoscan.serving."""
