"""What only makes the read models fast; nothing here knows the ledger or a read model.

- ``projector``: ``Projector``, the live write path (one transaction per batch, positions
  and rows together) and the tracking statements compiled once.
- ``loader``: ``Loader``, a rebuild's loading mode (in memory, each row written once).
- ``log``: ``LogReader``, the log read in batches (SQLite's events table read directly) and
  decoded once for every projection; ``decoder``: ``FastDecoder``.
- ``writer``: ``TableWriter``, rows written with the driver's ``executemany``.
- ``pages``: a rebuild's pages of rows on SQLite and the ``PageWriter`` process
  (``page_writer.py``) that commits them.
- ``processes``: the rebuild's worker processes (``rebuild_worker.py``).
- ``listener``: PostgreSQL's LISTEN and the runner's advisory lock.
- ``transactions``: which transactions take SQLite's write lock first.

The read models (``projections.funds`` …) and the orchestration (``projections.runner``,
``projections.rebuild``) use these; these import only the contract
(``projections.projection``), its errors, the column types and the tracking table.
"""
