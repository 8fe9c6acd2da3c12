"""IVOA wire formats only: models, XML parse/emit, faults, URIs. No I/O, no storage, no HTTP."""
