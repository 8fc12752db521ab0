"""Formats every part of qmail shares: addresses and headers (address), dates as qmail
writes them (date822), the queue envelope (envelope), netstrings (netstring, QMTP and
QMQP)."""
