"""odontoscan.configs."""
