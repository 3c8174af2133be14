"""The store: everything that talks to PostgreSQL, over the named queries of sql/queries.

- `db`: connections, the named-query loader, psycopg errors as qqueue errors.
- `migrate`: the schema files of sql/migrations, applied in order.
- `queue`: the only code that changes task state (submit, claim, complete, fail, renew, reclaim, purge);
  the API's async writes sit beside their blocking twins.
- `reads`: every read the API and CLI make, as typed values run on either kind of connection.
- `keys`: API keys. `invariants`: the queue's promises, asked of the database.
"""
