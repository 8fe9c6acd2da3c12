"""vault: node metadata in SQL (SQLAlchemy Core; SQLite or PostgreSQL), bytes in a BlobStore."""
