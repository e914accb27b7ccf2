"""Landed cost after receipt: freight or duty invoiced after the goods arrived, spread over the lot's units."""
