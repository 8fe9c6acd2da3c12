"""arcfs: the arc and vault VOSpace services mounted as a POSIX filesystem (FUSE).

The filesystem logic (:mod:`arcfs.logic`) is a plain class talking to the server only
through :class:`vosclient.Client`; :mod:`arcfs.fuse_adapter` is the thin mfusepy layer over
it and :mod:`arcfs.cli` the ``arcfs`` / ``mount.arcfs`` commands. See SEMANTICS.md.
"""
