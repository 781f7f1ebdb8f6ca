"""Backgrounds: background sets (``sets``: user images, the built-in set, procedural) and compositing a cut-out onto
them (``composite``, pure numpy: shared by the shard writers and the trainer)."""
