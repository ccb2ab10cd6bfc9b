"""Both sides of simgate, simulated: an Onlinesim marketplace and a SIM bank.

They talk to simgate only over HTTP, as the real ones do, so a demo, an end-to-end test or
a benchmark exercises exactly what production runs. `marketplace` polls, orders, finishes
and receives PUSH_SMS while checking the partner against the spec; `simbank` is a farm of
virtual SIMs that sends SMS to /intake/sms; `run` wires the two together and reconciles
what one sent with what the other received.
"""
