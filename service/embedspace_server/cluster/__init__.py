"""Sharded, replicated collections on a Ray cluster (the `ray` extra): the catalog actor,
the shard replica actors, and the collection and backend a front end uses. Imported only
when the server runs with `ray_address`."""
