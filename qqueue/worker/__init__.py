"""Worker runtime: a supervisor process that does all database work and slot processes that only compute."""
