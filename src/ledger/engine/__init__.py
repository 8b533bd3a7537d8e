"""What only makes the ledger fast, beside what it does: batched durable writes
(``batching``), the command runtime around the use cases (``commands``), an encoder that
writes the library's JSON faster (``transcoder``) and a server's garbage-collector settings
(``gc``). Nothing here imports a domain module; the application passes its aggregate types in.
"""
