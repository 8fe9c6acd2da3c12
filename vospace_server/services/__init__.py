"""HTTP endpoints: thin layers that parse a request, ask the ACL policy, call a NodeTree."""
