"""Both sides of simgate, simulated: marketplaces (Onlinesim, SMSHUB) and a SIM bank.

They talk to simgate only over HTTP, as the real ones do, so a demo, an end-to-end test or
a benchmark exercises exactly what production runs. `marketplace` is the buyer: it polls,
orders, finishes (`finishing`) and receives PUSH_SMS (`pushes`) over either protocol
(`protocol`, `client`), keeping its records in a `ledger` that `checks` judges against the
spec; `simbank` is a farm of virtual SIMs that sends SMS to /intake/sms; `run` wires them
together and reconciles what one sent with what the others received.
"""
