"""Development tooling shipped with the product: the local stack, SIPp parties, RTP voices and the demo."""
