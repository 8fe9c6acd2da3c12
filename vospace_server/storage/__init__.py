"""Storage: the NodeTree interface (tree.py) and its implementations, vault and arc.

Storage knows nothing of HTTP. It raises protocol faults (NodeNotFound, DuplicateNode, ...)
because those are the vocabulary of the data model, and the services map them to HTTP.
"""
