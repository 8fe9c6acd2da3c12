"""Identities, tokens and the one ACL policy every endpoint goes through."""
