"""Development tooling shipped with the product: the local stack, SIPp parties, RTP voices and the demo."""

#: The demo's stories (controller/devstack/demo.py): `#` 1 0 1 with a consultation, the phone's own
#: Transfer button (a blind REFER), or `#` again for a three-way conference. Here, so that the command
#: line lists them without importing the demo.
DEMO_SCENARIOS = ("hotkey", "refer", "conference")
