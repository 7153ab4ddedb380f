"""The PostgreSQL store, for fleets: the store contract on tables (README "Store backends").

psycopg 3 is an optional dependency (`pip install 'certctl[postgresql]'`), imported
only when a postgresql:// store is opened.
"""

from certctl.store.postgres.store import PgStore

__all__ = ["PgStore"]
