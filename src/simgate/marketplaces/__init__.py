"""One folder per marketplace: wire schemas, request handlers, push payloads."""
