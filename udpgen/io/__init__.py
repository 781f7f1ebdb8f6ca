"""File I/O shared by every stage: atomic writes (``atomic``), safe image reading and writing (``images``), the UDP
image codec (``udp``), premultiplication and contact sheets. Import the module you need: this package imports
nothing on its own."""
