"""odontoscan.planning."""
