"""ucspi: the TCP super-server tools (ucspi-tcp 0.88) and a UNIX-socket server."""
