"""odontoscan.models."""
