"""Orders: the API, personal data encrypted at rest, the lifecycle and its audit trail."""
