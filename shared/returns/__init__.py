"""Returns: a sale's units coming back into stock, and units going back to their vendor."""
