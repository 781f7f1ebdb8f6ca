"""Generators of the project's own characters (not imported at run time): the sample character in
``assets/sample`` (``character``, geometry in ``mesh``)."""
