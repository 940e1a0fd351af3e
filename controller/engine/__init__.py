"""The transfer engine: load a conversation, let the pure machine decide, save, carry out its actions."""
