"""The ``udpgen`` command line: the click group in ``main`` and one module per command family, each with a
``register(group)``. Commands parse, call the library, print."""
