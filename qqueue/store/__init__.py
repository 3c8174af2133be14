"""The store: everything that talks to PostgreSQL.

`db` (connections, the named-query loader, error mapping), `migrate` (the schema files of sql/migrations),
`queue` and `queue_async` (the only code that changes task state), `reads` (typed reads the API and CLI make),
`keys` (API keys) and `invariants` (the queue's promises, asked of the database).
"""
