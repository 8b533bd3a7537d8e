"""Exports of a fund's books for other tools (Beancount, hledger)."""
