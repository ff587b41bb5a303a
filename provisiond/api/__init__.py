"""The REST API (aiohttp): app factory, routes, schemas, auth and errors."""
