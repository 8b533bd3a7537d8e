"""The verifiable log: an RFC 9162 Merkle tree over the event log, C2SP signed checkpoints,
the JSON Lines export and the offline verifier.

This package imports only the standard library, ``cryptography`` and the domain's money rule
(``ledger.domain.figures``), so that an auditor can run the verifier without the rest of the
ledger. See docs/audit.md for the formats.
"""
