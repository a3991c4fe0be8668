"""The policy: schema (what may be written), compiler (what it means), loader (file to policy)."""
