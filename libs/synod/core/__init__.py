"""Pure sans-I/O cores, no I/O and no clock reads; may import only cores, wire, errors, ids."""
