"""The dispatch service: turns open orders and live vehicles into planned routes."""
