"""Formats every part of qmail shares: addresses and headers (address), the queue
envelope (envelope), netstrings (netstring, QMTP and QMQP)."""
