"""The controller service: the one entry point for everything Kamailio sends, and the wiring."""
