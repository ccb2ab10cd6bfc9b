"""The HTTP face: Starlette routes over the marketplace adapters, intake and health."""
