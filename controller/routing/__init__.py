"""Where a call goes: the routing decision for a new INVITE and the numbering plans (pure, no I/O)."""
