"""The outbox worker: claims due deliveries, pushes them, records every attempt."""
