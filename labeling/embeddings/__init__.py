"""The Django side of embeddings (docs/embeddings.md): embedding spaces and their vector index,
the hook the prediction batch calls, reused-photo detection with the shop catalog, similar-image
search, prototype classes and the label-error review. The numerical parts live in ``ml``."""
