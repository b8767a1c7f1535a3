"""odontoscan.training."""
