"""Storage: the database connection (SQLite or Postgres) and the plan index."""
