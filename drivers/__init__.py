"""rtoc.drivers: the built-in drivers (generator, system)."""
