"""The supervisor service (dead, stuck, looping agents); imports service and below, no role."""
