"""Wire contracts: each module parses one request shape into the normalized `Hit`."""
