"""The local stack: moto's server, the same resources as a deployment, and the event-source pumps."""
