"""Live tracking: the driver socket, the OsmAnd endpoint, the ingest pipeline, console fan-out."""
